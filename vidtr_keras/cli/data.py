"""`vidtr predict`, `vidtr evaluate`, `vidtr train` and `vidtr make-demo-data`.

A model (`--model`) is a preset name (`vidtr presets`), a `.keras` file, or a `vidtr train` output
directory (its last checkpoint). `--weights` loads a `.weights.h5` file (e.g. from `vidtr convert` or
`vidtr inflate`) or an official checkpoint (`.pth`/`.npz`) into it.
"""

import argparse
import dataclasses
import os

import keras
import numpy as np

from vidtr_keras import data as vdata
from vidtr_keras import run_dir
from vidtr_keras.cli import console as _console
from vidtr_keras.apps.evaluation import evaluate
from vidtr_keras.apps.predict import clip_geometry, load_model, parse_views, predict_video
from vidtr_keras.training import RELEASED_EPOCHS, TrainConfig, train


def _class_name(names, index):
    return names[index] if names is not None and index < len(names) else str(index)


def _labels_for(model_spec, labels):
    """Class names from `--labels`, else from the run directory given as `--model`, else None."""
    if labels:
        return vdata.read_class_names(labels)
    stored = run_dir.class_names_file(model_spec) if model_spec else None
    return vdata.read_class_names(stored) if stored else None


def cmd_predict(args):
    """`vidtr predict`: top-k classes of one video, scores averaged over its views."""
    from rich.table import Table

    if args.timeline or args.plot:  # sliding windows over the whole video instead of 10x3 views
        from vidtr_keras.cli.video import cmd_predict_timeline

        return cmd_predict_timeline(args)
    console = _console()
    if not os.path.exists(args.video):
        raise FileNotFoundError(f"No video at {args.video!r}.")
    names = _labels_for(args.model, args.labels)
    num_clips, num_crops = parse_views(args.views)
    with console.status(f"loading {args.model}"):
        model, notes = load_model(args.model, args.weights, num_classes=None)
    if names is not None and len(names) != model.output_shape[-1]:
        raise ValueError(
            f"--labels {args.labels!r} names {len(names)} classes; the model has {model.output_shape[-1]}."
        )
    geometry = clip_geometry(model, rate=args.rate or run_dir.stored_rate(args.model), crop_size=args.crop_size)
    with console.status(f"decoding {num_clips}x{num_crops} views of {args.video}"):
        scores, views = predict_video(
            model, args.video, geometry, num_clips, num_crops, args.batch_size, args.centered_windows, args.multi_label
        )
    top = np.argsort(-scores, kind="stable")[: args.top_k]
    table = Table(title=f"{os.path.basename(args.video)}: top-{len(top)} of {len(scores)} classes")
    table.add_column("rank")
    table.add_column("class")
    table.add_column("probability", justify="right")
    for rank, index in enumerate(top, 1):
        table.add_row(str(rank), f"{_class_name(names, int(index))} ({int(index)})", f"{scores[index]:.4f}")
    console.print(table)
    short = " (shorter than one window: padded with its last frame)" if views.short else ""
    console.print(
        f"{views.num_frames} frames{short}; {len(views.views)} views ({num_clips} windows x {num_crops} crops) of "
        f"{geometry.describe()}, {'sigmoid' if args.multi_label else 'softmax'} averaged; "
        f"{'; '.join(notes)}; backend {keras.backend.backend()}",
        highlight=False,
    )
    if args.json:
        result = {
            "video": args.video,
            "num_frames": int(views.num_frames),
            "short": bool(views.short),
            "views": len(views.views),
            "top": [
                {"class": int(i), "name": _class_name(names, int(i)), "probability": float(scores[i])} for i in top
            ],
        }
        run_dir.write_json(args.json, result)
    return 0


def cmd_evaluate(args):
    """`vidtr evaluate`: multi-view accuracy on an annotation list, with a report of every failure."""
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    console = _console(args.quiet)
    num_clips, num_crops = parse_views(args.views)
    names = _labels_for(args.model, args.labels)
    with console.status(f"loading {args.model}"):
        model, notes = load_model(args.model, args.weights, num_classes=len(names) if names else None)
    classes = int(model.output_shape[-1])
    annotations = vdata.read_annotations(args.annotations, class_names=names, num_classes=classes, fmt=args.format)
    if args.root is not None and not os.path.isdir(args.root):
        raise FileNotFoundError(f"--root {args.root!r} is not a directory.")
    geometry = clip_geometry(model, rate=args.rate or run_dir.stored_rate(args.model), crop_size=args.crop_size)
    console.print(
        f"evaluating {len(annotations.records)} videos of {args.annotations} ({num_clips}x{num_crops} views of "
        f"{geometry.describe()}); {'; '.join(notes)}",
        highlight=False,
    )
    with Progress(console=console, disable=args.quiet) as bar:
        task = bar.add_task("videos", total=len(annotations.records))
        report = evaluate(
            model,
            annotations,
            args.root,
            geometry,
            num_clips,
            num_crops,
            args.batch_size,
            args.workers,
            args.centered_windows,
            True if args.multi_label else None,
            progress=lambda done, total, path: bar.update(task, completed=done),
        )
    report["model"] = args.model
    report["weights"] = args.weights
    if args.report:
        run_dir.write_json(args.report, report)
    table = Table(title=f"{args.annotations}: {report['videos_read']} videos read, {report['videos_failed']} failed")
    for col in ("level", "top-1", "top-5") + (("mAP",) if report["multi_label"] else ()):
        table.add_column(col)
    for level, key, unit in (
        ("clip (every view)", "clip_level", "views"),
        ("video (views averaged)", "video_level", "videos"),
    ):
        row = report[key]
        if row is None:
            continue
        cells = [f"{level}, {row[unit]} {unit}", f"{100 * row['top1']:.2f}", f"{100 * row['top5']:.2f}"]
        if report["multi_label"]:
            cells.append("-" if row.get("mAP") is None else f"{100 * row['mAP']:.2f}")
        table.add_row(*cells)
    console.print(table)
    for item in report["failed"]:
        console.print(
            f"[yellow]skipped[/yellow] {escape(item['file'])}:{item['line']}: {escape(item['problem'])}",
            highlight=False,
        )
    if report["short_videos"]:
        console.print(
            f"{len(report['short_videos'])} video(s) shorter than one {geometry.clip_len}x{geometry.rate}-frame window "
            "(clips padded with the last frame): " + ", ".join(s["path"] for s in report["short_videos"][:10]),
            highlight=False,
        )
    if args.report:
        console.print(f"report written to {args.report}", highlight=False)
    if report["videos_read"] == 0:
        raise ValueError(f"No video of {args.annotations!r} could be evaluated ({report['videos_failed']} failed).")
    return 0


def _threads_flag(text):
    if text in ("auto", "default"):
        return None if text == "default" else text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--threads must be auto, default or a positive number, got {text!r}")
    return int(text)


def cmd_train(args):
    """`vidtr train`: the released recipe, a checkpoint per epoch, `--resume`, a CSV log."""
    # Every TrainConfig field is a flag of the same name; a few need translating.
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    given.update(
        epochs=args.epochs if args.epochs is not None else RELEASED_EPOCHS,
        check_videos=not args.no_check_videos,
        flip=not args.no_flip,
        multi_label=True if args.multi_label else None,
    )
    config = TrainConfig(**given)
    console = _console(args.quiet)
    result = train(
        config,
        verbose=0 if args.quiet else args.verbose,
        resume=args.resume,
        overwrite=args.overwrite,
        log=lambda line: console.print(line, highlight=False),
    )
    last = result["history"][-1] if result["history"] else {}
    console.print(
        f"done: {result['epochs']} epochs; last epoch "
        + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float) and k not in ("seconds",))
        + f"; checkpoint and {run_dir.LOG_FILE} in {result['output']}",
        highlight=False,
    )
    return 0


def cmd_make_demo_data(args):
    """`vidtr make-demo-data DIR`: a tiny dataset of synthetic videos in the official list format."""
    from vidtr_keras.data.synthetic import make_demo_dataset

    height, width = (int(v) for v in args.size.lower().split("x")) if "x" in args.size else (int(args.size),) * 2
    written = make_demo_dataset(
        args.directory,
        num_classes=args.classes,
        videos_per_class=args.videos_per_class,
        frames=tuple(args.frames),
        height=height,
        width=width,
        extension=args.extension,
        val_per_class=args.val_per_class,
        seed=args.seed,
    )
    console = _console()
    console.print(
        f"wrote {args.classes * args.videos_per_class + 2} videos ({height}x{width} px, "
        f"{args.frames[0]}-{args.frames[1]} "
        f"frames, {args.extension}) under {written['root']}:\n  "
        + "\n  ".join(f"{k}: {v}" for k, v in written.items() if k != "root")
        + "\n(test.txt adds a corrupt file and a 4-frame video to the validation videos, to see them reported)",
        highlight=False,
    )
    return 0


def _add_model_args(p):
    p.add_argument("--model", required=False, help="preset name, .keras file or `vidtr train` output directory")
    p.add_argument(
        "--weights", default=None, help=".weights.h5 or official .pth/.npz checkpoint to load into the model"
    )
    p.add_argument(
        "--rate", type=int, default=None, help="frame sampling rate (default: 64 // clip length, e.g. 8 for 8 frames)"
    )
    p.add_argument("--crop-size", type=int, default=None, help="crop side in px (default: the model's image size)")


def _add_view_args(p):
    p.add_argument("--views", default="10x3", help="windows x crops per video (default 10x3 = 30 views)")
    p.add_argument(
        "--centered-windows",
        action="store_true",
        help="shift the windows by half a tick (mmaction style) instead of the released loader's starts",
    )
    p.add_argument("--batch-size", type=int, default=6, help="views per forward pass")
    p.add_argument("--multi-label", action="store_true", help="sigmoid scores (and mAP) instead of softmax")


def register(subparsers):
    p = subparsers.add_parser("predict", help="top-5 classes of one video (scores averaged over 10x3 views)")
    p.add_argument("video")
    _add_model_args(p)
    _add_view_args(p)
    p.add_argument("--labels", default=None, help="class-names file (one name per line)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the result to this JSON file")
    from vidtr_keras.cli.video import add_timeline_args

    add_timeline_args(p)
    p.set_defaults(func=_requires_model(cmd_predict))

    p = subparsers.add_parser("evaluate", help="multi-view top-1/top-5 (and mAP) on an annotation list, with a report")
    _add_model_args(p)
    _add_view_args(p)
    p.add_argument("--annotations", required=True, help="list file: 'path num_frames label' lines or path,label CSV")
    p.add_argument("--root", default=None, help="directory the list's paths are relative to")
    p.add_argument("--labels", default=None, help="class-names file (labels may then be names)")
    p.add_argument("--format", choices=("auto", "official", "csv"), default="auto")
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--report", default=None, help="write the full report (metrics, failures, predictions) as JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_requires_model(cmd_evaluate))

    p = subparsers.add_parser("train", help="train / fine-tune on annotation lists (released recipe), resumable")
    _add_model_args(p)
    p.add_argument("--train", default=None, help="training list")
    p.add_argument("--val", default=None, help="validation list (one centre-cropped clip per video)")
    p.add_argument("--root", default=None, help="directory the lists' paths are relative to")
    p.add_argument("--val-root", default=None, help="root of the validation videos (default: --root)")
    p.add_argument("--labels", default=None, help="class-names file; sets the number of classes")
    p.add_argument("--num-classes", type=int, default=None, help="classes (default: --labels, else the model's)")
    p.add_argument("--output", required=True, help="run directory: checkpoints, log.csv")
    p.add_argument("--epochs", type=int, default=None, help=f"default {RELEASED_EPOCHS}")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-5, help="L2 added to the gradient (torch SGD style)")
    p.add_argument(
        "--milestones",
        type=int,
        nargs="+",
        default=None,
        help="epochs where the lr is multiplied by --gamma (default 25 40 of 50, scaled for shorter runs)",
    )
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--short-side", type=int, default=None, help="training resize (default 256/224 x crop size)")
    p.add_argument("--seed", type=int, default=0, help="makes the run repeatable (data order, augmentation, init)")
    p.add_argument("--workers", type=int, default=1, help="data-loading threads")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output from its last checkpoint, with that run's settings (only "
        "--workers, --distribute and --jit-compile may change; another value is an error)",
    )
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --output that holds a checkpoint")
    p.add_argument(
        "--distribute",
        choices=("none", "data-parallel"),
        default=None,
        help="data-parallel: split every batch over all devices (JAX, keras.distribution.DataParallel)",
    )
    p.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto")
    p.add_argument(
        "--threads",
        type=_threads_flag,
        default="auto",
        help="PyTorch intra-op CPU threads: auto (1 for a small model such as the tiny presets, whose ops are "
        "too small to split; torch's default otherwise), a number, or 'default'",
    )
    p.add_argument(
        "--no-flip",
        action="store_true",
        help="no random horizontal flips (for classes that a mirror image changes, e.g. moving left/right)",
    )
    p.add_argument(
        "--remat",
        action="store_true",
        help="rematerialise every encoder block in the backward pass: less activation memory, about "
        "one more forward pass of compute",
    )
    p.add_argument(
        "--mixed-precision",
        action="store_true",
        help="bfloat16 compute with float32 weights (keras 'mixed_bfloat16' policy)",
    )
    p.add_argument("--multi-label", action="store_true", help="binary cross-entropy on multi-hot targets")
    p.add_argument(
        "--no-check-videos",
        action="store_true",
        help="only check that the videos exist before training, without opening each one",
    )
    p.add_argument(
        "--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras progress: 0 none, 1 bar, 2 per epoch"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("make-demo-data", help="write a tiny dataset of synthetic videos (lists, class names)")
    p.add_argument("directory")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--videos-per-class", type=int, default=6)
    p.add_argument("--frames", type=int, nargs=2, default=(24, 40), metavar=("MIN", "MAX"))
    p.add_argument("--size", default="32x40", help="HEIGHTxWIDTH in px")
    p.add_argument("--extension", default=".avi", choices=(".avi", ".mkv", ".mp4", ".webm"))
    p.add_argument("--val-per-class", type=int, default=2, help="videos of each class in val.txt (the rest: train.txt)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_demo_data)
    return subparsers


def _requires_model(handler):
    def run(args):
        if not args.model:
            raise ValueError(
                f"vidtr {handler.__name__[4:]} needs --model (a preset, a .keras file or a run directory)."
            )
        return handler(args)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run
