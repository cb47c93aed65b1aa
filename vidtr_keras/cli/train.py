"""`vidtr train`: trains or fine-tunes a model on annotation lists with the released recipe, resumable."""

import argparse
import dataclasses

from vidtr_keras import run_dir
from vidtr_keras.cli.args import add_model_args, rich_console
from vidtr_keras.training import RELEASED_EPOCHS, TrainConfig, train


def threads_flag(text):
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
    console = rich_console(args.quiet)
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


def register(subparsers):
    p = subparsers.add_parser("train", help="train / fine-tune on annotation lists (released recipe), resumable")
    add_model_args(p)
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
        type=threads_flag,
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
    return subparsers
