"""What the `vidtr` commands share: the console, the model and view flags, reading class names, and
turning the library's parameter names into flags.

Every command module imports from here and from the library, never from another command module.
"""

import argparse
import re


def rich_console(quiet=False):
    """The one rich console of the command (stdout; `quiet=True` prints nothing)."""
    from rich.console import Console

    return Console(quiet=quiet)


def add_model_args(p):
    """`--model`, `--weights`, `--rate`, `--crop-size`: which model, and the clips it sees."""
    p.add_argument("--model", required=False, help="preset name, .keras file or `vidtr train` output directory")
    p.add_argument(
        "--weights", default=None, help=".weights.h5 or official .pth/.npz checkpoint to load into the model"
    )
    p.add_argument(
        "--rate", type=int, default=None, help="frame sampling rate (default: 64 // clip length, e.g. 8 for 8 frames)"
    )
    p.add_argument("--crop-size", type=int, default=None, help="crop side in px (default: the model's image size)")


def add_view_args(p):
    """`--views`, `--centered-windows`, `--batch-size`, `--multi-label`: the multi-view protocol."""
    p.add_argument("--views", default="10x3", help="windows x crops per video (default 10x3 = 30 views)")
    p.add_argument(
        "--centered-windows",
        action="store_true",
        help="shift the windows by half a tick (mmaction style) instead of the released loader's starts",
    )
    p.add_argument("--batch-size", type=int, default=6, help="views per forward pass")
    p.add_argument("--multi-label", action="store_true", help="sigmoid scores (and mAP) instead of softmax")


def requires_model(handler):
    """`handler` with a clear error when `--model` is missing (argparse keeps it optional so that the
    error names the command and says what a model can be)."""

    def run(args):
        if not args.model:
            raise ValueError(
                f"vidtr {handler.__name__[4:].replace('_', '-')} needs --model (a preset, a .keras file or a run "
                "directory)."
            )
        return handler(args)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def labels_for(model_spec, labels):
    """Class names from `--labels`, else from the run directory given as `--model`, else None."""
    from vidtr_keras import data as vdata
    from vidtr_keras import run_dir

    if labels:
        return vdata.read_class_names(labels)
    stored = run_dir.class_names_file(model_spec) if model_spec else None
    return vdata.read_class_names(stored) if stored else None


def check_labels(names, labels_file, model):
    """A `--labels` file must name as many classes as the model scores."""
    if names is not None and len(names) != model.output_shape[-1]:
        raise ValueError(
            f"--labels {labels_file!r} names {len(names)} classes; the model has {model.output_shape[-1]}."
        )


def flags_of(parser, command):
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
