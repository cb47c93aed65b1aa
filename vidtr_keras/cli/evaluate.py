"""`vidtr evaluate --model M --annotations LIST`: multi-view top-1/top-5 (and mAP) accuracy on an
annotation list, with a report of every video that could not be read."""

import os

from vidtr_keras import data as vdata
from vidtr_keras.apps.evaluation import evaluate
from vidtr_keras.apps.predict import parse_views
from vidtr_keras.cli.args import (
    add_model_args,
    add_view_args,
    labels_for,
    load_model_and_clips,
    requires_model,
    rich_console,
)
from vidtr_keras.models import preset_dir


def cmd_evaluate(args):
    """`vidtr evaluate`: multi-view accuracy on an annotation list, with a report of every failure."""
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    console = rich_console(args.quiet)
    num_clips, num_crops = parse_views(args.views)
    names = labels_for(args.model, args.labels)
    model, notes, geometry = load_model_and_clips(args, console, num_classes=len(names) if names else None)
    classes = int(model.output_shape[-1])
    annotations = vdata.read_annotations(args.annotations, class_names=names, num_classes=classes, fmt=args.format)
    if args.root is not None and not os.path.isdir(args.root):
        raise FileNotFoundError(f"--root {args.root!r} is not a directory.")
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
        preset_dir.write_json(args.report, report)
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


def register(subparsers):
    p = subparsers.add_parser("evaluate", help="multi-view top-1/top-5 (and mAP) on an annotation list, with a report")
    add_model_args(p)
    add_view_args(p)
    p.add_argument("--annotations", required=True, help="list file: 'path num_frames label' lines or path,label CSV")
    p.add_argument("--root", default=None, help="directory the list's paths are relative to")
    p.add_argument("--labels", default=None, help="class-names file (labels may then be names)")
    p.add_argument("--format", choices=("auto", "official", "csv"), default="auto")
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--report", default=None, help="write the full report (metrics, failures, predictions) as JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=requires_model(cmd_evaluate))
    return subparsers
