"""`vidtr pretrain-images`: a ViT pretrained on generated fractal images, written as a timm checkpoint that
`vidtr inflate` reads like an ImageNet one (no download).

The flags are `PretrainConfig`'s fields (`vidtr_keras.training.pretrain_images`), generated from their
types, defaults and help; only OUTPUT (positional) and the progress switches are written out here.
"""

from vidtr_keras.cli.args import add_dataclass_args, dataclass_from_args, name_flags_in_help, rich_console
from vidtr_keras.training.pretrain_images import PretrainConfig, pretrain_images


def cmd_pretrain_images(args):
    config = dataclass_from_args(PretrainConfig, args)
    console = rich_console(args.quiet)
    console.print(
        f"{config.classes} fractal classes x {config.images_per_class} images at {config.image_size} px; ViT width "
        f"{config.width}, {config.depth} blocks, {config.heads} heads, {config.patch} px patches",
        highlight=False,
    )
    result = pretrain_images(config, verbose=0 if args.quiet else args.verbose)
    console.print(
        f"wrote {result.path} ({result.parameters:,} parameters) and {result.record_path}: accuracy "
        f"{result.train_accuracy:.3f} on the training images, {result.val_accuracy:.3f} on held-out images; "
        f"inflate it with `vidtr inflate {result.path} --preset ...`",
        highlight=False,
        markup=False,
    )
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "pretrain-images",
        help="pretrain a ViT on generated fractal images (FractalDB-style); writes a timm checkpoint for inflate",
    )
    p.add_argument("output", help="the checkpoint: .safetensors or .npz (timm names); OUTPUT.json records the run")
    add_dataclass_args(p, PretrainConfig)
    p.add_argument(
        "--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras progress: 0 none, 1 bar, 2 per epoch"
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    name_flags_in_help(p)
    p.set_defaults(func=cmd_pretrain_images)
