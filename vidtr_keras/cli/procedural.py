"""`vidtr make-benchmark-data DIR --task TASK`: the procedural temporal-reasoning benchmark
(`vidtr_keras.data.procedural`) written as lossless videos plus annotation lists, for `vidtr train`
and `vidtr evaluate`."""

from vidtr_keras.cli import console as _console


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
    console = _console()
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


def register(subparsers):
    from vidtr_keras.data.procedural import TASKS

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
    return subparsers
