"""`vidtr benchmark PRESET`: one row of results/benchmark.md on the current backend.
`vidtr benchmark --data LIST_OR_FOLDER [PRESET]`: the data path's clips/s (training clips and 10x3 test
views per number of loader threads, decoding vs transform time), beside PRESET's training step."""

import math

from vidtr_keras.cli.args import rich_console


def _workers(text):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"--workers takes thread counts >= 1 separated by commas (e.g. 1,2), got {text!r}.")
    return values


def cmd_data_benchmark(args, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from vidtr_keras.data.throughput import data_throughput, video_paths

    workers = _workers(args.workers)
    paths = video_paths(args.data, root=args.root)
    clip_len = args.frames
    if clip_len is None and args.preset:
        from vidtr_keras.models import get_preset

        clip_len = get_preset(args.preset)["config"]["num_frames"]
    clip_len = int(clip_len or 8)
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for mode in ("train", "views"):
            items = args.items if mode == "train" else args.videos
            for count in workers:
                task = progress.add_task(f"{mode}, {count} thread(s)", total=None)
                results.append(
                    data_throughput(
                        paths,
                        mode=mode,
                        workers=count,
                        items=items,
                        clip_len=clip_len,
                        rate=args.rate,
                        crop_size=args.image_size,
                        seed=args.seed,
                        on_progress=lambda done, total, task=task: progress.update(task, completed=done, total=total),
                    )
                )
    table = Table(
        title=f"data path: {len(paths)} video(s) from {args.data}, clips {clip_len}x{args.rate}, {args.image_size} px"
    )
    for name in ("what", "threads", "clips/s", "decode ms/clip", "transform ms/clip", "decode share"):
        table.add_column(name, justify="left" if name == "what" else "right")
    for r in results:
        what = "training clips" if r["mode"] == "train" else f"test views ({r['videos_per_s']:.2f} videos/s)"
        cpu = r["decode_s"] + r["transform_s"]
        table.add_row(
            what,
            str(r["workers"]),
            f"{r['clips_per_s']:.1f}",
            f"{r['decode_s'] * 1e3:.1f}",
            f"{r['transform_s'] * 1e3:.1f}",
            f"{r['decode_s'] / cpu:.0%}" if cpu else "-",
        )
    console.print(table)
    console.print(
        f"Reads after each file's first (a training run's later epochs); the first read of every file took "
        f"{results[0]['first_reads_s']:.2f} s in all (a long file is decoded to the end once to check seeking in it)."
    )
    console.print("load average: " + " / ".join(f"{v:.1f}" for v in results[-1]["loadavg"]))
    if args.preset:
        from vidtr_keras.complexity.benchmark import benchmark

        with console.status(f"benchmark {args.preset} training step") as status:
            step = benchmark(
                args.preset,
                mode="train",
                frames=clip_len,
                batch_size=args.batch,
                runs=args.runs,
                warmup=args.warmup,
                image_size=args.image_size,
                on_progress=lambda message: status.update(f"benchmark {args.preset}: {message}"),
            )
        model_rate = step["batch_size"] / step["seconds"]
        one = next(r for r in results if r["mode"] == "train" and r["workers"] == min(workers))
        per_thread = one["clips_per_s"] / one["workers"]
        console.print(
            f"{args.preset} trains {model_rate:.2f} clips/s on {step['backend']} (batch {step['batch_size']}, "
            f"{step['seconds']:.2f} s a step); one loader thread gives {per_thread:.1f} training clips/s: "
            f"about {max(1, math.ceil(model_rate / per_thread))} loader thread(s) keep the model busy."
        )


def cmd_benchmark(args):
    from rich.table import Table

    console = rich_console()
    if args.data:
        return cmd_data_benchmark(args, console)
    if not args.preset:
        raise ValueError("vidtr benchmark needs a PRESET (e.g. vidtr_s), or --data LIST_OR_FOLDER.")
    from vidtr_keras.complexity.benchmark import benchmark

    with console.status(f"benchmark {args.preset}") as status:
        result = benchmark(
            args.preset,
            mode=args.mode,
            frames=args.frames,
            batch_size=args.batch,
            remat=args.remat,
            mixed_precision=args.mixed_precision,
            runs=args.runs,
            warmup=args.warmup,
            image_size=args.image_size,
            on_progress=lambda message: status.update(f"benchmark {args.preset}: {message}"),
        )
    gib = 2.0**30
    table = Table(title=f"{args.preset} {args.mode} on {result['backend']}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [
        ("clip", f"batch {result['batch_size']} x {result['frames']} frames x {args.image_size} px"),
        ("options", f"remat={result['remat']}, mixed_bfloat16={result['mixed_precision']}"),
        ("median s (min-max)", f"{result['seconds']:.3f} ({min(result['runs_s']):.3f}-{max(result['runs_s']):.3f})"),
        ("GFLOP per call (full count)", f"{result['gflop']:.1f}"),
        ("achieved GFLOP/s", f"{result['gflops']:.1f}"),
        ("matmul peak GFLOP/s (same process)", f"{result['peak_gflops']:.1f}"),
        ("% of peak", f"{result['percent_of_peak']:.0f}%"),
        ("peak RSS GiB", f"{result['peak_rss'] / gib:.2f}"),
        ("load average", " / ".join(f"{v:.1f}" for v in result["loadavg"])),
    ]
    if result.get("predicted_bytes"):
        rows.append(("memory model GiB", f"{result['predicted_bytes'] / gib:.2f}"))
    for row in rows:
        table.add_row(*row)
    console.print(table)


def register(subparsers):
    p = subparsers.add_parser(
        "benchmark",
        help="time inference or a training step against the backend's matmul peak, or the data path (--data)",
        description="Times one preset on the current backend (KERAS_BACKEND) and compares it with the "
        "backend's float32 matmul peak measured in the same process. With --data: the clips/s the data path "
        "delivers from those videos (training clips and 10x3 test views, per number of loader threads, "
        "decoding vs transform time) and, when PRESET is given, how many loader threads its training step needs.",
    )
    p.add_argument("preset", nargs="?", default=None, help="preset name, e.g. vidtr_s (optional with --data)")
    p.add_argument("--data", default=None, metavar="LIST_OR_FOLDER", help="measure the data path on these videos")
    p.add_argument("--root", default=None, help="with --data LIST: the directory the list's paths are relative to")
    p.add_argument("--workers", default="1,2", help="with --data: loader thread counts to measure, e.g. 1,2")
    p.add_argument("--items", type=int, default=None, help="with --data: training clips per measurement")
    p.add_argument("--videos", type=int, default=None, help="with --data: videos whose test views are loaded")
    p.add_argument("--rate", type=int, default=8, help="with --data: frame sampling rate of a clip")
    p.add_argument("--seed", type=int, default=0, help="with --data: seed of the random windows")
    p.add_argument("--mode", choices=("train", "inference"), default="train")
    p.add_argument("--frames", type=int, default=None, help="clip length (the preset's by default; 8 with --data)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=3, help="timed calls (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (compilation)")
    p.add_argument("--remat", action="store_true", help="rematerialise the encoder blocks")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_bfloat16 dtype policy")
    p.set_defaults(func=cmd_benchmark)
