"""`vidtr benchmark PRESET`: one row of results/benchmark.md on the current backend."""

from vidtr_keras.cli.args import rich_console


def cmd_benchmark(args):
    from rich.table import Table

    from vidtr_keras.complexity.benchmark import benchmark

    console = rich_console()
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
        help="time inference or a training step against the backend's matmul peak",
        description="Times one preset on the current backend (KERAS_BACKEND) and compares it with the "
        "backend's float32 matmul peak measured in the same process.",
    )
    p.add_argument("preset", help="preset name, e.g. vidtr_s")
    p.add_argument("--mode", choices=("train", "inference"), default="train")
    p.add_argument("--frames", type=int, default=None, help="clip length (the preset's by default)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=3, help="timed calls (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (compilation)")
    p.add_argument("--remat", action="store_true", help="rematerialise the encoder blocks")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_bfloat16 dtype policy")
    p.set_defaults(func=cmd_benchmark)
