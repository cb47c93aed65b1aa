"""What the `vidtr` commands share: the console, the model and view flags, reading class names, and
turning the library's parameter names into flags.

Every command module imports from here and from the library, never from another command module.
"""

import argparse
import dataclasses
import re
import typing


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
    """Class names from `--labels`, else those stored with `--model` (a preset or run directory), else None."""
    from vidtr_keras import data as vdata
    from vidtr_keras.models import preset_dir

    if labels:
        return vdata.read_class_names(labels)
    return preset_dir.stored_class_names(model_spec) if model_spec else None


def load_model_and_clips(args, console, num_classes=None, clip_len=None):
    """(model, notes, geometry): the model of `--model`/`--weights` and the clips it sees: `--rate` and
    `--crop-size`, else the rate stored with the model, else the model's own."""
    from vidtr_keras.data.sampling import clip_geometry
    from vidtr_keras.models.loading import load_model

    with console.status(f"loading {args.model}"):
        loaded = load_model(args.model, args.weights, num_classes=num_classes)
    geometry = clip_geometry(loaded.model, clip_len=clip_len, rate=args.rate or loaded.rate, crop_size=args.crop_size)
    return loaded.model, loaded.notes, geometry


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


def add_dataclass_args(parser, cls):
    """One flag per field of the dataclass `cls`, from the field's type, default and metadata (`help`,
    `flag`, `choices`, `parse`; e.g. `vidtr_keras.training.TrainConfig`), so that the defaults live
    in the library only. Fields the parser already has a flag for (e.g. from `add_model_args`) and
    fields whose `flag` is None are skipped. A boolean field is a switch: off by default -> the flag turns
    it on; on by default -> its `flag` (`--no-...`) turns it off; None by default -> the flag sets True.
    Returns the names of the fields that have a flag."""
    hints = typing.get_type_hints(cls)
    taken = {action.dest for action in parser._actions}
    names = []
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if "flag" in meta and meta["flag"] is None:
            continue
        names.append(field.name)
        if field.name in taken:
            continue
        flag = meta.get("flag") or "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        default = None if field.default is dataclasses.MISSING else field.default
        help_text = meta.get("help", "")
        options = {"dest": field.name, "help": help_text}
        if kind is bool:
            if default is None:
                options.update(action="store_const", const=True, default=None)
            else:
                options.update(action="store_false" if default else "store_true")
        else:
            if field.default is dataclasses.MISSING:
                options["required"] = True
            else:
                options["default"] = default
                if default is not None:  # the default said once, where it is defined
                    options["help"] = (
                        f"{help_text[:-1]}; default {default})"
                        if help_text.endswith(")")
                        else f"{help_text} (default {default})"
                    )
            if "parse" in meta:
                options["type"] = _from_text(meta["parse"], flag)
            elif typing.get_origin(kind) is list:
                options.update(nargs="+", type=typing.get_args(kind)[0])
            elif kind in (int, float):
                options["type"] = kind
            if "choices" in meta:
                options["choices"] = meta["choices"]
        options["help"] = options["help"].replace("%", "%%")
        parser.add_argument(flag, **options)
    return names


def dataclass_from_args(cls, args):
    """An instance of the dataclass `cls` from the parsed flags of `add_dataclass_args` (fields without
    a flag keep their defaults)."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def name_flags_in_help(parser):
    """Help texts taken from the library name parameters in backticks; show the flags instead."""
    flags = {a.dest: max(a.option_strings, key=len) for a in parser._actions if a.option_strings}
    for action in parser._actions:
        if action.help:
            action.help = as_flags(action.help, flags)


def _from_text(parse, flag):
    """An argparse type from a library parser whose ValueError names the parameter in backticks."""

    def convert(text):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(re.sub(r"`[a-z_][a-z0-9_]*`", flag, str(err), count=1)) from None

    convert.__name__ = parse.__name__
    return convert
