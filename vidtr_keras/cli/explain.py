"""`vidtr explain`: attention rollout of a model on the centre clip of a video, drawn over its frames.

The logic is in `vidtr_keras.apps.explain`; this module holds argparse and printing only.
"""

import os

from vidtr_keras.cli.args import labels_for, load_model_and_clips, rich_console


def _class_name(names, index):
    return names[index] if names is not None and index < len(names) else f"class {index}"


def cmd_explain(args):
    """`vidtr explain VIDEO --model M --output out.png`."""
    import keras

    from vidtr_keras.apps.explain import explain_video, plot_rollout

    console = rich_console()
    if not os.path.exists(args.video):
        raise FileNotFoundError(f"No video at {args.video!r}.")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("`vidtr explain` draws with matplotlib: pip install matplotlib") from None
    model, notes, geometry = load_model_and_clips(args, console, clip_len=args.clip_len)
    names = labels_for(args.model, args.labels)
    with console.status(f"attention rollout of {geometry.describe()} from the middle of {args.video}"):
        result = explain_video(model, args.video, geometry)
    top = int(result.scores.argmax())
    name = os.path.basename(os.path.normpath(args.model))
    title = (
        f"{name} on {os.path.basename(args.video)}: predicts {_class_name(names, top)} "
        f"(p = {result.scores[top]:.2f}); {geometry.describe()} from the middle of the video"
    )
    plot_rollout(
        result.rollout,
        result.frames,
        title=title,
        frame_labels=[f"frame {i}" for i in result.frame_indices],
        path=args.output,
    )
    importance = ", ".join(
        f"{i}: {100 * v:.0f}%" for i, v in zip(result.frame_indices, result.rollout.frame_importance)
    )
    console.print(
        f"wrote {args.output}\npredicted {_class_name(names, top)} (p = {result.scores[top]:.2f}); "
        f"temporal importance per frame (video frame: share) {importance}; "
        f"{100 * float(result.rollout.class_token_share):.0f}% on class tokens\n"
        f"{'; '.join(notes)}; backend {keras.backend.backend()}",
        highlight=False,
    )
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "explain", help="attention rollout of one video's centre clip, drawn over its frames (PNG)"
    )
    p.add_argument("video")
    p.add_argument("--model", required=True, help="preset name, .keras file or `vidtr train` output directory")
    p.add_argument(
        "--weights", default=None, help=".weights.h5 or official .pth/.npz checkpoint to load into the model"
    )
    p.add_argument("--output", default="explain.png", help="image to write (default explain.png)")
    p.add_argument("--labels", default=None, help="class-names file (default: the run directory's)")
    p.add_argument("--clip-len", type=int, default=None, help="frames per clip (default: the model's)")
    p.add_argument("--rate", type=int, default=None, help="frame sampling rate (default: 64 // clip length)")
    p.add_argument("--crop-size", type=int, default=None, help="crop side in px (default: the model's image size)")
    p.set_defaults(func=cmd_explain)
