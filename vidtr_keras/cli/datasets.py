"""Data-set tools: `vidtr make-demo-data`, `vidtr make-benchmark-data` and `vidtr check-videos`.

vidtr make-demo-data DIR [--classes 4] [--videos-per-class 6]
vidtr make-benchmark-data DIR --task TASK   (the procedural temporal-reasoning benchmark,
    `vidtr_keras.data.procedural`, as lossless videos plus annotation lists for `vidtr train`/`evaluate`)
vidtr check-videos LIST_OR_FOLDER [--min-frames 64] [--workers 2] [--json report.json] [--move-bad DIR]
vidtr prepare-videos SRC DST --short-side 256 [--codec mp4v] [--workers N] [--list SRC/train.txt]
"""

from vidtr_keras.cli.args import rich_console


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
    console = rich_console()
    console.print(
        f"wrote {args.classes * args.videos_per_class + 2} videos ({height}x{width} px, "
        f"{args.frames[0]}-{args.frames[1]} "
        f"frames, {args.extension}) under {written['root']}:\n  "
        + "\n  ".join(f"{k}: {v}" for k, v in written.items() if k != "root")
        + "\n(test.txt adds a corrupt file and a 4-frame video to the validation videos, to see them reported)",
        highlight=False,
    )
    return 0


def cmd_make_benchmark_data(args):
    """Writes one task of the procedural benchmark under DIR."""
    from vidtr_keras.data import procedural

    counts = {"train": args.train, "val": args.val, "test": args.test}
    for split, count in counts.items():
        if count < 1:
            raise ValueError(f"`{split}` must be at least 1 clip, got {count}.")
    written = procedural.write_benchmark(
        args.directory, args.task, counts, seed=args.seed, frames=args.frames, size=args.size
    )
    task = procedural.TASKS[args.task]
    console = rich_console()
    console.print(
        f"wrote the {args.task!r} task ({task.description}; classes: {', '.join(task.classes)}): "
        f"{sum(counts.values())} videos of {args.frames} frames at {args.size}x{args.size} px "
        f"under {written['root']}\n  "
        + "\n  ".join(f"{k}: {v}" for k, v in written.items() if k != "root")
        + f"\nEach video is one clip: train and evaluate with --rate 1 --crop-size {args.size}"
        + (" and no horizontal flips (right/left are mirror images)." if args.task == "direction" else "."),
        highlight=False,
    )
    return 0


def _fmt(value):
    return "-" if value is None else str(value)


def cmd_check_videos(args):
    """`vidtr check-videos`: decode every video, report the broken ones, optionally move them."""
    from rich.progress import Progress
    from rich.table import Table

    from vidtr_keras.data.integrity import check_videos, collect_videos, move_bad
    from vidtr_keras.models import preset_dir

    console = rich_console(quiet=args.quiet)
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
        preset_dir.write_json(args.json, report.to_dict())
        console.print(f"wrote {args.json}", highlight=False)
    return 1 if report.failed else 0


def cmd_prepare_videos(args):
    """`vidtr prepare-videos`: re-encode every video at the training resolution, report the broken ones."""
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from vidtr_keras.data.prepare import BROKEN, prepare_videos, rewrite_list
    from vidtr_keras.models import preset_dir

    console = rich_console(quiet=args.quiet)
    workers = args.workers if args.workers is not None else len(os.sched_getaffinity(0))
    columns = (TextColumn("re-encoding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("re-encoding", total=None)
        report = prepare_videos(
            args.source,
            args.destination,
            args.short_side,
            codec=args.codec,
            workers=workers,
            timeout=args.timeout,
            skip_existing=args.skip_existing,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    left_out = []
    for list_file in args.list or ():
        target = os.path.join(args.destination, os.path.basename(list_file))
        written = rewrite_list(list_file, target, report, root=args.root)
        left_out += [(f"{list_file}:{number}", path, why) for number, path, why in written["left_out"]]
        console.print(f"wrote {target} ({written['written']} videos)", highlight=False)
    shown = report.results if args.all else report.failed
    if shown:
        title = f"{len(report.failed)} of {len(report.results)} video(s) broken" if report.failed else "videos"
        table = Table(title=title)
        for col in ("video", "status", "frames in", "frames out", "size", "problem"):
            table.add_column(col, justify="right" if col.startswith("frames") else "left")
        for r in shown:
            status = f"[red]{r['status']}[/red]" if r["status"] in BROKEN else r["status"]
            size = "x".join(map(str, r["size_out"])) if r.get("size_out") else "-"
            table.add_row(
                r["path"], status, _fmt(r.get("frames_in")), _fmt(r.get("frames_out")), size, r["error"] or ""
            )
        console.print(table)
    if left_out:
        console.print(
            f"[red]{len(left_out)} list line(s) left out[/red]:\n  "
            + "\n  ".join(f"{where} {path}: {why}" for where, path, why in left_out),
            highlight=False,
        )
    done = [r for r in report.results if r["status"] == "ok"]
    before, after = (sum(r[k] or 0 for r in done) / 2**20 for k in ("bytes_in", "bytes_out"))
    unstated = sum(1 for r in done if r.get("fps_stated") is False)
    counts = ", ".join(f"{n} {status}" for status, n in report.counts().items())
    console.print(
        f"{len(report.results)} video(s) under {args.source} ({counts}); short side {args.short_side} px, "
        f"{args.codec}, frame counts checked; re-encoded {before:.1f} MiB -> {after:.1f} MiB in {args.destination}"
        + (f"; {unstated} without a stated frame rate written at 30 fps" if unstated else ""),
        highlight=False,
    )
    if args.json:
        preset_dir.write_json(args.json, {**report.to_dict(), "lists_left_out": left_out})
        console.print(f"wrote {args.json}", highlight=False)
    return 1 if report.failed or left_out else 0


def register(subparsers):
    from vidtr_keras.data.integrity import DEFAULT_MIN_FRAMES
    from vidtr_keras.data.prepare import CODECS, DEFAULT_CODEC
    from vidtr_keras.data.procedural import TASKS

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

    p = subparsers.add_parser(
        "make-benchmark-data",
        help="write a task of the procedural temporal-reasoning benchmark as videos + annotation lists",
    )
    p.add_argument("directory")
    p.add_argument(
        "--task",
        required=True,
        choices=list(TASKS),
        help="; ".join(f"{name}: {task.description}" for name, task in TASKS.items()),
    )
    p.add_argument("--train", type=int, default=512, help="training clips (default 512)")
    p.add_argument("--val", type=int, default=128, help="validation clips (default 128)")
    p.add_argument("--test", type=int, default=128, help="test clips (default 128)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    p.add_argument("--size", type=int, default=32, help="frame side in px (default 32)")
    p.add_argument("--seed", type=int, default=0, help="benchmark seed: the same seed writes the same videos")
    p.set_defaults(func=cmd_make_benchmark_data)

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

    p = subparsers.add_parser(
        "prepare-videos",
        help="re-encode every video once at the training resolution (every frame kept); report the broken ones",
    )
    p.add_argument("source", help="a folder of videos (recursively; its sub-folders are kept)")
    p.add_argument("destination", help="the output folder")
    p.add_argument("--short-side", type=int, required=True, help="short side of the output frames in px (e.g. 256)")
    p.add_argument(
        "--codec",
        default=DEFAULT_CODEC,
        choices=list(CODECS),
        help="mp4v (.mp4; default: the fastest to decode and the smallest of what OpenCV writes, a key frame every "
        "12 frames), mjpg (.avi; every frame a key frame, larger), ffv1 (.mkv; lossless, large, slow to decode)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: one per core; 0: in this process)"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per video before its decoder counts as hung")
    p.add_argument("--skip-existing", action="store_true", help="keep outputs already written (resume a preparation)")
    p.add_argument(
        "--list",
        action="append",
        metavar="LIST",
        help="an annotation list of SRC's videos to write into DST for the prepared files (new extension; broken "
        "videos left out); repeatable",
    )
    p.add_argument("--root", default=None, help="directory the lists' paths are relative to (default: each list's)")
    p.add_argument("--json", default=None, help="write the full report (every video) as JSON")
    p.add_argument("--all", action="store_true", help="list every video in the table, not only the broken ones")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_prepare_videos)
    return subparsers
