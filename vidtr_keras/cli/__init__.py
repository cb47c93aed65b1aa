"""The `vidtr` command: argparse and printing only; every subcommand calls library functions.

Each module in `COMMAND_MODULES` exposes `register(subparsers)`, which adds its sub-parsers with
`set_defaults(func=handler)`. Handlers raise `ValueError`, `FileNotFoundError` or `ImportError` with a
message for the user; `main` prints it and returns exit code 2. `vidtr --help` lists every command.
"""

import argparse
import importlib
import os
import re

# TensorFlow's oneDNN kernels are off by default on some CPUs, where a Conv3D training step is then
# orders of magnitude slower; an explicit setting by the user wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Order is the order of `vidtr --help`.
COMMAND_MODULES = [
    "model",
    "convert",
    "data",
    "procedural",
    "complexity",
    "benchmark",
    "explain",
    "video",
    "export",
]


def console(quiet=False):
    """The one rich console of the command (stdout; `quiet=True` prints nothing)."""
    from rich.console import Console

    return Console(quiet=quiet)


def build_parser():
    parser = argparse.ArgumentParser(prog="vidtr", description="VidTr video transformers in Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"vidtr_keras.cli.{name}").register(sub)
    return parser


def _flags_of(parser, command):
    """{dest: '--flag'} of the options of one subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return {
                a.dest: max(a.option_strings, key=len) for a in action.choices[command]._actions if a.option_strings
            }
    return {}


def as_flags(message, flags):
    """Library errors name parameters in backticks (`num_classes`, `resume=True`); the command line
    shows the flag that sets them (--num-classes, --resume)."""

    def flag(match):
        name = match.group(1)
        return flags.get(name, match.group(0))

    return re.sub(r"`([a-z_][a-z0-9_]*)(?:=True)?`", flag, message)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        from rich.markup import escape

        message = as_flags(str(err), _flags_of(parser, args.command))
        console().print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        return 2


__all__ = ["COMMAND_MODULES", "build_parser", "console", "main"]
