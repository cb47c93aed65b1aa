"""`vidtr features`: backbone embeddings of videos (a video, a list or a folder) to an .npz file.

vidtr features LIST_OR_VIDEO --model M --output feats.npz [--mode class_token|mean|tokens]
               [--views 10x3 --pool mean|none | --stride S --window-crops 1|3]
"""

import os

import numpy as np

from vidtr_keras.cli.args import add_model_args, load_model_and_clips, requires_model, rich_console


def cmd_features(args):
    """`vidtr features`: backbone embeddings of a video, a list or a folder, to an .npz file."""
    from rich.progress import Progress

    from vidtr_keras.apps.features import extract_features
    from vidtr_keras.apps.predict import parse_views
    from vidtr_keras.data.integrity import collect_videos

    console = rich_console(quiet=args.quiet)
    if not args.output.endswith(".npz"):
        raise ValueError(f"--output must end in .npz, got {args.output!r}.")
    if args.stride is not None and args.stride < 1:
        raise ValueError(f"--stride must be a positive integer, got {args.stride}.")
    entries = collect_videos(args.source, root=args.root)
    num_clips, num_crops = parse_views(args.views)
    if args.stride is not None:
        num_crops = args.window_crops
    model, notes, geometry = load_model_and_clips(args, console)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("extracting", total=len(entries))
        result = extract_features(
            model,
            [(e.path, e.file) for e in entries],
            geometry,
            mode=args.mode,
            num_clips=num_clips,
            num_crops=num_crops,
            pool=args.pool,
            stride=args.stride,
            batch_size=args.batch_size,
            half_tick=args.centered_windows,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    directory = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(directory, exist_ok=True)
    np.savez(args.output, **result.arrays())
    how = (
        f"{num_clips}x{num_crops} views, pooled: {args.pool}"
        if args.stride is None
        else f"windows every {args.stride} frames, {num_crops} crop(s), pooled: {args.pool}"
    )
    console.print(
        f"wrote {args.output}: features {tuple(result.features.shape)} ({args.mode}) of {len(result.paths)} video(s); "
        f"{how}; clips of {geometry.describe()}; {'; '.join(notes)}",
        highlight=False,
    )
    for path, reason in result.failures:
        console.print(f"[red]failed:[/red] {path}: {reason}", highlight=False)
    return 1 if result.failures else 0


def register(subparsers):
    from vidtr_keras.apps.features import FEATURE_MODES, POOLINGS

    p = subparsers.add_parser(
        "features", help="backbone embeddings (class token, mean token or all tokens) of videos to an .npz file"
    )
    p.add_argument(
        "source", help="a video, a list file (official 'path frames label', path,label CSV, or paths) or a folder"
    )
    add_model_args(p)
    p.add_argument(
        "--output", required=True, help="the .npz file: features, video_index, paths (+ start_frame, start_time)"
    )
    p.add_argument("--root", default=None, help="directory a list's paths are relative to (default: the list's)")
    p.add_argument(
        "--mode",
        choices=FEATURE_MODES,
        default="class_token",
        help="class_token: the classifier's input; mean: mean patch token; tokens: (frames, h, w, d) per clip",
    )
    p.add_argument("--views", default="10x3", help="windows x crops per video (default 10x3, the evaluation protocol)")
    p.add_argument(
        "--pool", choices=POOLINGS, default="mean", help="average the views' features (mean) or keep them (none)"
    )
    p.add_argument("--centered-windows", action="store_true", help="mmaction-style centred view windows")
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        help="long videos: features of sliding windows every STRIDE frames (one decoding pass) instead of views",
    )
    p.add_argument("--window-crops", type=int, choices=(1, 3), default=1, help="crops per sliding window")
    p.add_argument("--batch-size", type=int, default=6, help="clips per forward pass")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=requires_model(cmd_features))
    return subparsers
