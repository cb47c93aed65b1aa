"""`vidtr convert` (official checkpoints) and `vidtr inflate` (ImageNet ViT weights)."""

import json
import os

from vidtr_keras.cli.args import rich_console
from vidtr_keras.convert import vit as vit_module


def cmd_convert(args):
    from vidtr_keras.convert import gluonmm

    console = rich_console()
    config = args.config
    if os.path.exists(config):
        with open(config) as f:
            config = json.load(f)
    elif config not in gluonmm.RELEASED_CONFIGS:
        try:
            config = json.loads(config)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"--config {args.config!r} is neither a JSON file, a JSON string nor a released model "
                f"({', '.join(gluonmm.RELEASED_CONFIGS)})."
            ) from err
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


def cmd_inflate(args):
    """`vidtr inflate`: ViT file -> an inflated preset saved as .keras or .weights.h5."""
    if not (args.output.endswith(".keras") or args.output.endswith(".weights.h5")):
        raise ValueError(f"--output must end in .keras or .weights.h5, got {args.output!r}.")
    from vidtr_keras.models import build_model

    console = rich_console()
    with console.status(f"reading {args.vit_file}"):
        vit = vit_module.read_vit(args.vit_file, num_heads=args.num_heads)
    with console.status(f"building {args.preset}"):
        overrides = {"mlp_activation": args.mlp_activation} if args.mlp_activation else {}
        model = build_model(args.preset, num_classes=args.num_classes, **overrides)
    report = vit_module.inflate(model, vit, tubelet_init=args.tubelet_init)
    if args.output.endswith(".keras"):
        model.save(args.output)
    else:
        model.save_weights(args.output)
    console.print(report.summary(max_rows=8), markup=False, highlight=False)
    console.print(
        f"wrote {args.output}: {args.preset} ({model.count_params():,} parameters), "
        f"{len(report.assignments)} variables from the ViT",
        markup=False,
        highlight=False,
    )
    return 0


def _register_inflate(subparsers):
    """Registers `vidtr inflate VIT_FILE --preset P [--num-classes N] [--tubelet-init central|average]
    [--num-heads H] --output out.keras|out.weights.h5` on an argparse sub-parser set; the handler is
    `args.func` and raises ValueError / FileNotFoundError / ImportError for the CLI to print."""
    p = subparsers.add_parser(
        "inflate", help="inflate ImageNet ViT weights (.pth, .safetensors, .npz) into a VidTr preset"
    )
    p.add_argument(
        "vit_file",
        help="timm state dict (.pth/.pt/.bin/.safetensors), JAX ViT (.npz), a saved keras-hub ViTBackbone "
        "(.keras), keras_hub:PRESET, or a checkpoint shipped in the package: vidtr_keras:tiny_fractal_vit",
    )
    p.add_argument("--preset", required=True, help="the VidTr preset to build (see `vidtr presets`)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier width (default: the preset's)")
    p.add_argument(
        "--tubelet-init",
        choices=vit_module.TUBELET_INITS,
        default="central",
        help="how an image patch kernel spreads over a tubelet of t > 1 frames",
    )
    p.add_argument(
        "--num-heads",
        type=int,
        default=None,
        help="the ViT's heads, to check them (timm state dicts do not record them)",
    )
    p.add_argument(
        "--mlp-activation",
        choices=("relu", "gelu"),
        default=None,
        help="the model's MLP activation (default: the preset's, relu as in the released VidTr code; gelu keeps "
        "the MLP of a timm/JAX ViT exactly)",
    )
    p.add_argument("--output", required=True, help="out.keras (whole model) or out.weights.h5")
    p.set_defaults(func=cmd_inflate)
    return p


def register(subparsers):
    p = subparsers.add_parser("convert", help="convert an official checkpoint (.pth or .npz) to .keras / .weights.h5")
    p.add_argument("checkpoint")
    p.add_argument(
        "--config",
        required=True,
        help="released model name, JSON file or JSON string of the official constructor arguments",
    )
    p.add_argument("--output", required=True)
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.set_defaults(func=cmd_convert)
    _register_inflate(subparsers)
