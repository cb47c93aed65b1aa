"""`vidtr features`, `vidtr check-videos`, and the handler of `vidtr predict VIDEO --timeline/--plot`.

vidtr predict VIDEO --model M --timeline out.json [--plot out.png] [--stride 32] [--smooth 3]
vidtr features LIST_OR_VIDEO --model M --output feats.npz [--mode class_token|mean|tokens]
               [--views 10x3 --pool mean|none | --stride S --window-crops 1|3]
vidtr check-videos LIST_OR_FOLDER [--min-frames 64] [--workers 2] [--json report.json] [--move-bad DIR]
"""

import os

import numpy as np

from vidtr_keras.cli import console as _console


def _fmt(value):
    return "-" if value is None else str(value)


# --------------------------------------------------------------------------------------------------
# vidtr predict --timeline / --plot


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

    from vidtr_keras import run_dir
    from vidtr_keras.cli.data import _labels_for
    from vidtr_keras.apps.predict import clip_geometry, load_model
    from vidtr_keras.apps.timeline import predict_timeline

    console = _console()
    if not os.path.exists(args.video):
        raise FileNotFoundError(f"No video at {args.video!r}.")
    if args.stride is not None and args.stride < 1:
        raise ValueError(f"--stride must be a positive integer, got {args.stride}.")
    if args.json:
        raise ValueError("--json holds the 10x3-view answer; with --timeline the timeline JSON has every window.")
    names = _labels_for(args.model, args.labels)
    with console.status(f"loading {args.model}"):
        model, notes = load_model(args.model, args.weights, num_classes=None)
    if names is not None and len(names) != model.output_shape[-1]:
        raise ValueError(
            f"--labels {args.labels!r} names {len(names)} classes; the model has {model.output_shape[-1]}."
        )
    geometry = clip_geometry(model, rate=args.rate or run_dir.stored_rate(args.model), crop_size=args.crop_size)
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
        run_dir.write_json(args.timeline, timeline.to_dict(top_k=args.top_k))
        console.print(f"wrote {args.timeline}", highlight=False)
    if args.plot:
        timeline.plot(args.plot)
        console.print(f"wrote {args.plot}", highlight=False)
    return 0


# --------------------------------------------------------------------------------------------------
# vidtr features


def cmd_features(args):
    """`vidtr features`: backbone embeddings of a video, a list or a folder, to an .npz file."""
    from rich.progress import Progress

    from vidtr_keras import run_dir
    from vidtr_keras.data.integrity import collect_videos
    from vidtr_keras.apps.features import extract_features
    from vidtr_keras.apps.predict import clip_geometry, load_model, parse_views

    console = _console(quiet=args.quiet)
    if not args.output.endswith(".npz"):
        raise ValueError(f"--output must end in .npz, got {args.output!r}.")
    if args.stride is not None and args.stride < 1:
        raise ValueError(f"--stride must be a positive integer, got {args.stride}.")
    entries = collect_videos(args.source, root=args.root)
    num_clips, num_crops = parse_views(args.views)
    if args.stride is not None:
        num_crops = args.window_crops
    with console.status(f"loading {args.model}"):
        model, notes = load_model(args.model, args.weights, num_classes=None)
    geometry = clip_geometry(model, rate=args.rate or run_dir.stored_rate(args.model), crop_size=args.crop_size)
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


# --------------------------------------------------------------------------------------------------
# vidtr check-videos


def cmd_check_videos(args):
    """`vidtr check-videos`: decode every video, report the broken ones, optionally move them."""
    from rich.progress import Progress
    from rich.table import Table

    from vidtr_keras import run_dir
    from vidtr_keras.data.integrity import check_videos, collect_videos, move_bad

    console = _console(quiet=args.quiet)
    if (args.clip_len is None) != (args.rate is None):
        raise ValueError("Give both --clip-len and --rate (a clip needs clip_len x rate frames), or --min-frames.")
    if args.clip_len is not None and (args.clip_len < 1 or args.rate < 1):
        raise ValueError(f"--clip-len and --rate must be positive, got {args.clip_len} and {args.rate}.")
    min_frames = args.min_frames if args.clip_len is None else args.clip_len * args.rate
    entries = collect_videos(args.source, root=args.root)
    if not entries:
        raise ValueError(f"No video found in {args.source!r}.")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("decoding", total=len(entries))
        report = check_videos(
            entries,
            min_frames=min_frames,
            count_tolerance=args.count_tolerance,
            workers=args.workers,
            timeout=args.timeout,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    if args.move_bad:
        moved = move_bad(report, args.move_bad)
    shown = report.results if args.all else report.failed
    if shown:
        table = Table(
            title=f"{len(report.failed)} of {len(report.results)} video(s) failed" if report.failed else "videos"
        )
        for col in ("video", "status", "decoded", "header", "listed", "problems"):
            table.add_column(col, justify="right" if col in ("decoded", "header", "listed") else "left")
        for r in shown:
            status = r["status"] if r["status"] == "ok" else f"[red]{r['status']}[/red]"
            problems = "; ".join(r["problems"]) + (f" -> moved to {r['moved_to']}" if r.get("moved_to") else "")
            table.add_row(
                r["path"],
                status,
                _fmt(r["decoded_frames"]),
                _fmt(r["header_frames"]),
                _fmt(r["listed_frames"]),
                problems,
            )
        console.print(table)
    counts = ", ".join(f"{n} {status}" for status, n in report.counts().items())
    console.print(
        f"{len(report.results)} video(s) checked ({counts}); "
        + (f"a clip needs {min_frames} frames" if min_frames else "no too-short check")
        + (f"; moved {len(moved)} to {args.move_bad}" if args.move_bad else ""),
        highlight=False,
    )
    if args.json:
        run_dir.write_json(args.json, report.to_dict())
        console.print(f"wrote {args.json}", highlight=False)
    return 1 if report.failed else 0


def register(subparsers):
    from vidtr_keras.cli.data import _add_model_args, _requires_model
    from vidtr_keras.data.integrity import DEFAULT_MIN_FRAMES
    from vidtr_keras.apps.features import FEATURE_MODES, POOLINGS

    p = subparsers.add_parser(
        "features", help="backbone embeddings (class token, mean token or all tokens) of videos to an .npz file"
    )
    p.add_argument(
        "source", help="a video, a list file (official 'path frames label', path,label CSV, or paths) or a folder"
    )
    _add_model_args(p)
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
    p.set_defaults(func=_requires_model(cmd_features))

    p = subparsers.add_parser(
        "check-videos", help="decode every video; report unreadable, truncated, corrupt, too-short and miscounted ones"
    )
    p.add_argument("source", help="a folder (its video files, recursively), a list file or one video")
    p.add_argument("--root", default=None, help="directory a list's paths are relative to (default: the list's)")
    p.add_argument(
        "--min-frames",
        type=int,
        default=DEFAULT_MIN_FRAMES,
        help=f"fewer frames is too short (default {DEFAULT_MIN_FRAMES}: the window of every released model; 0: off)",
    )
    p.add_argument("--clip-len", type=int, default=None, help="with --rate: a clip needs clip_len x rate frames")
    p.add_argument("--rate", type=int, default=None, help="frame sampling rate (with --clip-len)")
    p.add_argument("--count-tolerance", type=int, default=0, help="frame-count differences up to this are fine")
    p.add_argument(
        "--workers", type=int, default=2, help="decoding processes (0: in this process, no decoder messages)"
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per video before its decoder counts as hung")
    p.add_argument("--json", default=None, help="write the full report (every video) as JSON")
    p.add_argument("--move-bad", default=None, metavar="DIR", help="move the failed videos into DIR (quarantine)")
    p.add_argument("--all", action="store_true", help="list every video in the table, not only the failed ones")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_check_videos)
    return subparsers
