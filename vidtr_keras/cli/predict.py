"""`vidtr predict VIDEO --model M`: the top classes of one video, scores averaged over 10x3 views; with
`--timeline`/`--plot`, the top classes of every sliding window over the whole video instead.

A model (`--model`) is a preset name (`vidtr presets`), a `.keras` file, or a `vidtr train` output
directory (its last checkpoint). `--weights` loads a `.weights.h5` file (e.g. from `vidtr convert` or
`vidtr inflate`) or an official checkpoint (`.pth`/`.npz`) into it.

vidtr predict VIDEO --model M [--views 10x3] [--top-k 5] [--json out.json]
vidtr predict VIDEO --model M --timeline out.json [--plot out.png] [--stride 32] [--smooth 3]
"""

import os

import keras
import numpy as np

from vidtr_keras.apps.predict import parse_views, predict_video
from vidtr_keras.cli.args import (
    add_model_args,
    add_view_args,
    check_labels,
    labels_for,
    load_model_and_clips,
    requires_model,
    rich_console,
)
from vidtr_keras.models import preset_dir


def _class_name(names, index):
    return names[index] if names is not None and index < len(names) else str(index)


def cmd_predict(args):
    """`vidtr predict`: top-k classes of one video, scores averaged over its views."""
    from rich.table import Table

    if args.timeline or args.plot:  # sliding windows over the whole video instead of 10x3 views
        return cmd_predict_timeline(args)
    console = rich_console()
    if not os.path.exists(args.video):
        raise FileNotFoundError(f"No video at {args.video!r}.")
    names = labels_for(args.model, args.labels)
    num_clips, num_crops = parse_views(args.views)
    model, notes, geometry = load_model_and_clips(args, console)
    check_labels(names, args.labels, model)
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
        preset_dir.write_json(args.json, result)
    return 0


def add_timeline_args(p):
    """The flags `vidtr predict` takes for sliding-window predictions over the whole video."""
    g = p.add_argument_group("timeline (long videos: sliding windows in one decoding pass)")
    g.add_argument(
        "--timeline",
        default=None,
        metavar="JSON",
        help="predict every window of the video (not 10x3 views) and write the timeline here",
    )
    g.add_argument(
        "--plot", default=None, metavar="PNG", help="plot the smoothed per-class curves (implies a timeline)"
    )
    g.add_argument("--stride", type=int, default=None, help="frames between window starts (default: half a window)")
    g.add_argument("--smooth", type=int, default=3, help="odd number of windows the curves are averaged over")
    g.add_argument("--window-crops", type=int, choices=(1, 3), default=1, help="crops per window (1: centre)")
    g.add_argument("--fps", type=float, default=None, help="frames per second for timestamps (default: the video's)")


def cmd_predict_timeline(args):
    """`vidtr predict VIDEO --timeline/--plot`: top classes of every window, segments and curves."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from vidtr_keras.apps.timeline import predict_timeline

    console = rich_console()
    if not os.path.exists(args.video):
        raise FileNotFoundError(f"No video at {args.video!r}.")
    if args.stride is not None and args.stride < 1:
        raise ValueError(f"--stride must be a positive integer, got {args.stride}.")
    if args.json:
        raise ValueError("--json holds the 10x3-view answer; with --timeline the timeline JSON has every window.")
    names = labels_for(args.model, args.labels)
    model, notes, geometry = load_model_and_clips(args, console)
    check_labels(names, args.labels, model)
    columns = (
        TextColumn("decoding"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} frames"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("decode", total=None)
        timeline = predict_timeline(
            model,
            args.video,
            geometry,
            stride=args.stride,
            num_crops=args.window_crops,
            batch_size=max(1, args.batch_size // args.window_crops),  # --batch-size counts views (clips)
            smooth=args.smooth,
            multi_label=args.multi_label,
            class_names=names,
            fps=args.fps,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    table = Table(
        title=f"{os.path.basename(args.video)}: {len(timeline.segments())} segment(s) of the smoothed top class"
    )
    for col in ("from (s)", "to (s)", "class", "mean score"):
        table.add_column(col, justify="right" if col != "class" else "left")
    for s in timeline.segments():
        name = f"{s['name']} ({s['class']})" if names is not None else str(s["class"])
        table.add_row(f"{s['start_time']:.2f}", f"{s['end_time']:.2f}", name, f"{s['score']:.3f}")
    console.print(table)
    fps = f"{timeline.fps:g} fps" + ("" if timeline.fps_known else " (assumed: the container states none)")
    console.print(
        f"{timeline.num_frames} frames at {fps}; {len(timeline.starts)} windows of {geometry.describe()} every "
        f"{timeline.stride} frames, {timeline.num_crops} crop(s) each"
        + ("; shorter than one window: one padded window" if timeline.short else "")
        + f"; {'; '.join(notes)}",
        highlight=False,
    )
    if args.timeline:
        preset_dir.write_json(args.timeline, timeline.to_dict(top_k=args.top_k))
        console.print(f"wrote {args.timeline}", highlight=False)
    if args.plot:
        timeline.plot(args.plot)
        console.print(f"wrote {args.plot}", highlight=False)
    return 0


def register(subparsers):
    p = subparsers.add_parser("predict", help="top-5 classes of one video (scores averaged over 10x3 views)")
    p.add_argument("video")
    add_model_args(p)
    add_view_args(p)
    p.add_argument("--labels", default=None, help="class-names file (one name per line)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the result to this JSON file")
    add_timeline_args(p)
    p.set_defaults(func=requires_model(cmd_predict))
    return subparsers
