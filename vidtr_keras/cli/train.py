"""`vidtr train`: trains or fine-tunes a model on annotation lists, resumable: the released recipe by default,
the fine-tuning recipe of today's video transformers with `--optimizer adamw --schedule cosine ...`.

The flags are `TrainConfig`'s fields (`vidtr_keras.training`), generated from their types, defaults and
help, so a default lives in one place; only what is not a setting of the run (--resume, --overwrite,
--verbose, --quiet) is written out here.
"""

from vidtr_keras.cli.args import (
    add_dataclass_args,
    add_model_args,
    dataclass_from_args,
    name_flags_in_help,
    rich_console,
)
from vidtr_keras.training import TrainConfig, train
from vidtr_keras.training.callbacks import LOG_FILE


def cmd_train(args):
    """`vidtr train`: the released or the fine-tuning recipe, a checkpoint per epoch, `--resume`, a CSV log."""
    config = dataclass_from_args(TrainConfig, args)
    console = rich_console(args.quiet)
    result = train(
        config,
        verbose=0 if args.quiet else args.verbose,
        resume=args.resume,
        overwrite=args.overwrite,
        log=lambda line: console.print(line, highlight=False),
    )
    if not result["writer"]:  # another process of a distributed run reports
        return 0
    last = result["history"][-1] if result["history"] else {}
    console.print(
        f"done: {result['epochs']} epochs; last epoch "
        + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float) and k not in ("seconds",))
        + f"; checkpoint and {LOG_FILE} in {result['output']}",
        highlight=False,
    )
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train / fine-tune on annotation lists (released recipe, or AdamW + cosine fine-tuning), resumable",
    )
    add_model_args(p)  # the same --model/--weights/--rate/--crop-size as predict and evaluate
    add_dataclass_args(p, TrainConfig)  # every other setting, with the defaults of TrainConfig
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output from its last checkpoint, with that run's settings (only "
        "--workers, --loader, --distribute, --mesh, --jit-compile and --threads may change; another value is an error)",
    )
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --output that holds a checkpoint")
    p.add_argument(
        "--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras progress: 0 none, 1 bar, 2 per epoch"
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    name_flags_in_help(p)
    p.set_defaults(func=cmd_train)
    return subparsers
