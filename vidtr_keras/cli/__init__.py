"""The `vidtr` command: argparse and printing only; every subcommand calls library functions.

Each module in `COMMAND_MODULES` (one per command or group of commands) exposes `register(subparsers)`,
which adds its sub-parsers with `set_defaults(func=handler)`. Handlers raise `ValueError`,
`FileNotFoundError` or `ImportError` with a message for the user; `main` prints it (library errors name
parameters, shown as the flags that set them) and returns exit code 2. `vidtr --help` lists every
command. Shared flags and helpers live in `cli/args.py`; a command module imports only it and the library.
"""

import argparse
import importlib

from vidtr_keras.cli.args import as_flags, flags_of, rich_console

# The backend defaults (TensorFlow's oneDNN variable, its C++ start-up log lines held back) were applied
# when `vidtr_keras` was imported, before Keras: `vidtr_keras.backends.apply_defaults`.

# Order is the order of `vidtr --help`.
COMMAND_MODULES = [
    "model",
    "convert",
    "pretrain",
    "predict",
    "evaluate",
    "train",
    "datasets",
    "complexity",
    "benchmark",
    "explain",
    "features",
    "export",
]


def build_parser():
    parser = argparse.ArgumentParser(prog="vidtr", description="VidTr video transformers in Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"vidtr_keras.cli.{name}").register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        from rich.markup import escape

        message = as_flags(str(err), flags_of(parser, args.command))
        rich_console().print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        return 2


__all__ = ["COMMAND_MODULES", "build_parser", "main"]
