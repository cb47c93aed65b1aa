"""`vidtr export`: a model as a TensorFlow SavedModel, ONNX or LiteRT file that runs without Keras."""

from vidtr_keras.cli.args import rich_console


def cmd_export(args):
    import keras

    from vidtr_keras.apps.export import check_supported, export_model, supported_formats
    from vidtr_keras.models.task import VidTrVideoClassifier

    console = rich_console(quiet=args.quiet)
    fmt = args.format or (supported_formats() or ("saved_model",))[0]
    check_supported(fmt)  # before the model is loaded: a clear error at once
    with console.status(f"loading {args.model}"):
        classifier = VidTrVideoClassifier.from_preset(args.model, weights=args.weights)
    with console.status(f"exporting {fmt} from the {keras.backend.backend()} backend"):
        result = export_model(classifier, args.output, format=fmt, num_frames=args.frames)
    console.print(f"wrote {result.describe()}", highlight=False, soft_wrap=True)
    if classifier.class_names:
        console.print(
            f"class names: {len(classifier.class_names)} (keep classes.txt of the model beside it)", highlight=False
        )
    pre = classifier.preprocessor
    if pre is not None:
        console.print(
            f"inputs: frames resized to short side {pre.short_side}, centre crop {pre.crop_size}, "
            f"(x / 255 - {list(pre.mean)}) / {list(pre.std)}",
            highlight=False,
            soft_wrap=True,
        )
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "export",
        help="export a model to saved_model / onnx / litert (runs without Keras; dynamic batch size)",
        description=(
            "Exports the model's forward pass (normalised clips (batch, frames, height, width, 3) float32 -> "
            "logits). From tensorflow: saved_model, onnx, litert; from jax: saved_model, onnx; from torch: onnx. "
            "Set KERAS_BACKEND to choose; weights do not depend on the backend."
        ),
    )
    p.add_argument(
        "--model",
        required=True,
        help="preset directory (save_to_preset), `vidtr train` run directory, .keras file or preset name",
    )
    p.add_argument("--weights", default=None, help="with a preset name: .weights.h5 or official .pth/.npz checkpoint")
    p.add_argument(
        "--format",
        choices=("saved_model", "onnx", "litert"),
        default=None,
        help="default: the first format this backend exports",
    )
    p.add_argument("--output", required=True, help="a directory (saved_model), a .onnx or a .tflite file")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: the model's)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_export)
