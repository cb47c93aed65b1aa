"""`vidtr presets` and `vidtr demo [PRESET]`."""

import time

from vidtr_keras.cli.args import rich_console


def cmd_presets(args):
    from rich.table import Table

    from vidtr_keras.models.presets import PRESETS

    table = Table(title="vidtr-keras presets")
    for col in ("preset", "frames", "attention", "pooling", "description"):
        table.add_column(col)
    for name in sorted(PRESETS):
        c = PRESETS[name]["config"]
        pooling = (
            f"{list(c.get('pool_layers', ()))} drop {list(c.get('frames_dropped', ()))}"
            if c.get("pool_layers")
            else "-"
        )
        table.add_row(name, str(c["num_frames"]), c["attention"], pooling, PRESETS[name]["description"])
    rich_console().print(table)
    return 0


def cmd_demo(args):
    import keras
    import numpy as np

    from vidtr_keras.models import build_model

    console = rich_console()
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


def register(subparsers):
    p = subparsers.add_parser("demo", help="build a preset, print its summary and run a random clip through it")
    p.add_argument("preset", nargs="?", default="vidtr_s")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--frames", type=int, default=None, help="clip length (default: the preset's)")
    p.add_argument("--image-size", type=int, default=None, help="frame size (default: the preset's)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = subparsers.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)
