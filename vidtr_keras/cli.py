"""The `vidtr` command.

    vidtr demo [PRESET]           build a preset, print its summary, run a clip through it
    vidtr presets                 list the presets
    vidtr convert CKPT --config C --output FILE   official checkpoint -> .keras / .weights.h5
    vidtr inflate VIT --preset P --output FILE    ImageNet ViT weights -> a VidTr preset
    vidtr predict VIDEO --model M                 top-5 classes of one video (10x3 views averaged)
    vidtr evaluate --model M --annotations F --root DIR [--report out.json]
    vidtr train --model M --train F --val F --root DIR --epochs N [--resume]
    vidtr make-demo-data DIR                      a folder of synthetic videos with annotation lists
    vidtr info PRESET                             configuration, parameters, GFLOPs, training memory
    vidtr reproduce [NAME|all]                    regenerate results/ (from a source checkout)
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _console():
    from rich.console import Console

    return Console()


def cmd_presets(args):
    from rich.table import Table

    from vidtr_keras.models.presets import PRESETS

    table = Table(title="vidtr-keras presets")
    for col in ("preset", "frames", "attention", "pooling", "description"):
        table.add_column(col)
    for name in sorted(PRESETS):
        c = PRESETS[name]["config"]
        pooling = f"{list(c.get('pool_layers', ()))} drop {list(c.get('frames_dropped', ()))}" if c.get("pool_layers") else "-"
        table.add_row(name, str(c["num_frames"]), c["attention"], pooling, PRESETS[name]["description"])
    _console().print(table)
    return 0


def cmd_demo(args):
    import keras
    import numpy as np

    from vidtr_keras import build_model

    console = _console()
    overrides = {}
    if args.frames:
        overrides["num_frames"] = args.frames
    if args.image_size:
        overrides["image_size"] = args.image_size
    with console.status(f"building {args.preset} on {keras.backend.backend()}"):
        model = build_model(args.preset, num_classes=args.num_classes, **overrides)
    model.summary(print_fn=lambda line, *a, **k: console.print(line, markup=False, highlight=False))
    backbone = model.backbone
    frames = args.frames or backbone.num_frames
    size = args.image_size or backbone.image_size[0]
    kinds = [kind + (f" + std-topK drop {k}" if k else "") for kind, k in backbone.layer_plan]
    runs = []
    for kind in kinds:
        if runs and runs[-1][0] == kind:
            runs[-1][1] += 1
        else:
            runs.append([kind, 1])
    console.print(
        "encoder layers: " + ", ".join(f"{n} x {kind}" for kind, n in runs) + "\n"
        f"temporal tokens after each layer: {backbone.frames_after_each_layer(frames)}",
        highlight=False,
    )
    rng = np.random.default_rng(args.seed)
    clip = rng.standard_normal((args.batch, frames, size, size, backbone.num_channels)).astype("float32")
    with console.status(f"running a {clip.shape} clip"):
        model.predict(clip, verbose=0)  # build / compile once
        start = time.perf_counter()
        logits = model.predict(clip, verbose=0)
        seconds = time.perf_counter() - start
    probs = np.asarray(keras.ops.softmax(logits, axis=-1))
    top = np.argsort(-probs[0])[:5]
    console.print(
        f"backend {keras.backend.backend()}: clip {clip.shape} -> logits {tuple(logits.shape)} "
        f"in {seconds * 1000:.1f} ms; top-5 classes of the randomly initialised model: "
        + ", ".join(f"{i} ({probs[0, i]:.3f})" for i in top)
    )
    return 0


def cmd_convert(args):
    from vidtr_keras.convert import gluonmm

    console = _console()
    config = args.config
    if os.path.exists(config):
        with open(config) as f:
            config = json.load(f)
    elif config not in gluonmm.RELEASED_CONFIGS:
        try:
            config = json.loads(config)
        except json.JSONDecodeError:
            raise ValueError(
                f"--config {args.config!r} is neither a JSON file, a JSON string nor a released model "
                f"({', '.join(gluonmm.RELEASED_CONFIGS)})."
            )
    if not (args.output.endswith(".keras") or args.output.endswith(".weights.h5")):
        raise ValueError(f"--output must end in .keras or .weights.h5, got {args.output!r}.")
    with console.status(f"reading {args.checkpoint}"):
        state_dict = gluonmm.load_checkpoint(args.checkpoint)
    image_size = tuple(args.image_size) if args.image_size else None
    with console.status("converting"):
        model = gluonmm.from_state_dict(state_dict, config, image_size=image_size)
    if args.output.endswith(".keras"):
        model.save(args.output)
    else:
        model.save_weights(args.output)
    console.print(f"wrote {args.output}: {model.count_params():,} parameters, {len(state_dict)} tensors converted")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="vidtr", description="VidTr video transformers in Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="build a preset, print its summary and run a random clip through it")
    p.add_argument("preset", nargs="?", default="vidtr_s")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--frames", type=int, default=None, help="clip length (default: the preset's)")
    p.add_argument("--image-size", type=int, default=None, help="frame size (default: the preset's)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("convert", help="convert an official checkpoint (.pth or .npz) to .keras / .weights.h5")
    p.add_argument("checkpoint")
    p.add_argument("--config", required=True, help="released model name, JSON file or JSON string of the official constructor arguments")
    p.add_argument("--output", required=True)
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.set_defaults(func=cmd_convert)

    from vidtr_keras.convert.vit import add_inflate_command

    add_inflate_command(sub)

    from vidtr_keras.tasks import add_data_commands

    add_data_commands(sub)

    from vidtr_keras.complexity.cli import add_info_command, add_reproduce_command

    add_info_command(sub)
    add_reproduce_command(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        from rich.markup import escape

        _console().print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
