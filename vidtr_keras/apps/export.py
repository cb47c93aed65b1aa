"""Exports of a VidTr model that run without Keras: TensorFlow SavedModel, ONNX and LiteRT (TFLite).

    export_model(model, "vidtr_s.onnx", format="onnx")
    run = load_exported("vidtr_s.onnx")     # onnxruntime; no Keras, no vidtr_keras needed to serve
    logits = run(clips)                     # float32 (batch, frames, height, width, 3), normalised

The exported function is the model's forward pass in inference mode on normalised clips
(batch, num_frames, height, width, 3) float32 -> logits (batch, num_classes), with a dynamic batch size
and the model's own frame count and resolution. Raw frames are prepared as `VidTrPreprocessor` does
(short-side resize, centre crop, ImageNet mean/std), in the serving code.

What works from which backend (`supported_formats()`; each checked in spec_tests/apps/test_export.py
against Keras' logits for the vanilla, VidTr and C-VidTr models):

    format       tensorflow                 jax                       torch
    saved_model  Keras `model.export`       Keras `model.export`      no: Keras needs torch_xla
                                            (jax2tf)
    onnx         Keras `model.export`       Keras `model.export`      torch.onnx (dynamo exporter)
                 (tf2onnx)                  (jax2onnx)
    litert       Keras `model.export`       no: Keras exports LiteRT  no: litert-torch has no
                 (TFLite converter)         from TF / PyTorch only    dynamic batch size

A model's weights do not depend on the backend: to get a format that another backend exports, save the
weights (or a preset) and export under that backend (`KERAS_BACKEND=tensorflow vidtr export ...`).

The backend-specific tools (tensorflow, tf2onnx, torch.onnx / onnxscript, onnxruntime, ai-edge-litert)
are imported only when an export or a runtime needs them: `pip install vidtr-keras[export]`.
"""

import contextlib
import dataclasses
import importlib.util
import io
import os

import keras
import numpy as np

FORMATS = ("saved_model", "onnx", "litert")
SUFFIXES = {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}
BACKENDS = ("tensorflow", "jax", "torch")

# backend -> format -> (how it is made, the Python modules it needs)
_SUPPORTED = {
    "tensorflow": {
        "saved_model": ("keras model.export (tf_saved_model)", ("tensorflow",)),
        "onnx": ("keras model.export (tf2onnx)", ("tensorflow", "tf2onnx")),
        "litert": ("keras model.export (TFLite converter)", ("tensorflow",)),
    },
    "jax": {
        "saved_model": ("keras model.export (jax2tf)", ("tensorflow",)),
        "onnx": ("keras model.export (jax2onnx)", ("jax2onnx",)),
    },
    "torch": {
        "onnx": ("torch.onnx.export (dynamo exporter, dynamic batch)", ("onnxscript",)),
    },
}

# Why the other combinations are refused (found with keras 3.15, jax2onnx 0.17, torch 2.13).
_UNSUPPORTED = {
    ("jax", "litert"): (
        "Keras exports LiteRT from TensorFlow and PyTorch only, and the TFLite converter rejects the jax2tf "
        "SavedModel of this model"
    ),
    (
        "torch",
        "saved_model",
    ): "Keras makes a SavedModel from PyTorch through torch_xla, which has no build for this torch",
    ("torch", "litert"): "litert-torch converts static shapes only, so the batch size could not be dynamic",
}


@dataclasses.dataclass
class ExportedModel:
    """What `export_model` wrote: the artefact, its format and input, and how it was made."""

    path: str
    format: str
    backend: str
    method: str
    input_name: str
    input_shape: tuple  # (None, frames, height, width, channels); None = the dynamic batch size
    num_classes: int

    def describe(self):
        shape = "x".join("batch" if d is None else str(d) for d in self.input_shape)
        return (
            f"{self.format} at {self.path}: float32 {self.input_name} {shape} -> logits batch x {self.num_classes} "
            f"(from the {self.backend} backend via {self.method})"
        )


def supported_formats(backend=None):
    """The export formats that work from `backend` (the current Keras backend by default)."""
    backend = backend or keras.backend.backend()
    return tuple(f for f in FORMATS if f in _SUPPORTED.get(backend, {}))


def _where_supported(fmt):
    return [b for b in BACKENDS if fmt in _SUPPORTED[b]]


def check_supported(fmt, backend=None):
    """A clear error for a format that is unknown or does not export from `backend`."""
    backend = backend or keras.backend.backend()
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export `format` {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if backend not in _SUPPORTED:
        raise ValueError(f"Export needs the tensorflow, jax or torch backend; this is {backend!r}.")
    if fmt not in _SUPPORTED[backend]:
        reason = _UNSUPPORTED.get((backend, fmt), "not supported")
        where = _where_supported(fmt)
        raise ValueError(
            f"`format` {fmt!r} does not export from the {backend} backend ({reason}). From {backend} export "
            f"{' or '.join(supported_formats(backend)) or 'nothing'}; {fmt} exports from the "
            f"{' and '.join(where)} backend{'s' if len(where) > 1 else ''}: set KERAS_BACKEND={where[0]} and export "
            "the same model (weights do not depend on the backend)."
        )
    missing = [m for m in _SUPPORTED[backend][fmt][1] if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"Exporting {fmt} from the {backend} backend needs {', '.join(missing)}: pip install 'vidtr-keras[export]'."
        )


def _clip_shape(model, num_frames=None, image_size=None):
    backbone = getattr(model, "backbone", model)
    frames = num_frames or getattr(backbone, "num_frames", None)
    size = image_size or getattr(backbone, "image_size", None)
    channels = getattr(backbone, "num_channels", 3)
    if frames is None or size is None:
        raise ValueError("Give `num_frames` and `image_size`: the model does not say which clips it was made for.")
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (None, int(frames), int(size[0]), int(size[1]), int(channels))


def export_model(model, path, format="saved_model", num_frames=None, image_size=None):
    """Exports `model` (clips -> logits) to `path` in `format`, with a dynamic batch size.

    Args:
        model: a `VidTrClassifier` / `VidTrVideoClassifier` (or any Keras model on clips; then give
            `num_frames` and `image_size`). It must use float32 weights.
        path: a directory for "saved_model", a `.onnx` file for "onnx", a `.tflite` file for "litert".
        format: "saved_model", "onnx" or "litert" (see `supported_formats()` for this backend).
        num_frames, image_size: the clip the artefact takes; by default the model's own.

    Returns:
        An `ExportedModel` describing the artefact.

    Raises:
        ValueError: an unknown format, a format that does not export from this backend (the message
        names the formats that do and the backends that export this one), a path with the wrong
        suffix, or a model that is not float32. ImportError: the exporter is not installed.
    """
    backend = keras.backend.backend()
    check_supported(format, backend)
    path = os.fspath(path)
    suffix = SUFFIXES[format]
    if suffix and not path.endswith(suffix):
        raise ValueError(f"A {format} export is one file ending in {suffix}; got `path` {path!r}.")
    if not suffix and os.path.isfile(path):
        raise ValueError(f"A saved_model export is a directory; `path` {path!r} is a file.")
    if not suffix and os.path.isdir(path) and os.listdir(path):
        raise ValueError(f"`path` {path!r} is a directory that is not empty; choose a new one.")
    policy = getattr(getattr(model, "dtype_policy", None), "name", "float32")
    if policy != "float32":
        raise ValueError(f"Export needs a float32 model; this one uses the {policy!r} dtype policy.")
    shape = _clip_shape(model, num_frames, image_size)
    num_classes = int(model.output_shape[-1])
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    method = _SUPPORTED[backend][format][0]
    if backend == "torch" and format == "onnx":
        _torch_onnx(model, path, shape)
    else:
        spec = keras.InputSpec(shape=shape, dtype="float32", name="clips")
        keras_format = "tf_saved_model" if format == "saved_model" else format
        with _quiet():
            model.export(path, format=keras_format, input_signature=[spec], verbose=False)
    return ExportedModel(path, format, backend, method, "clips", shape, num_classes)


@contextlib.contextmanager
def _quiet():
    """The converters print progress to stdout; a library returns values instead."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _torch_onnx(model, path, shape):
    """ONNX from the torch backend with a dynamic batch: torch.export + the dynamo ONNX exporter.

    Keras' own torch ONNX export uses the TorchScript exporter when a dimension is dynamic, which fails
    on the channels-last memory format of Keras' convolution; the dynamo exporter handles it.
    """
    import torch

    class _Clips(torch.nn.Module):
        def __init__(self, wrapped):
            super().__init__()
            self.wrapped = wrapped

        def forward(self, clips):
            return self.wrapped(clips, training=False)

    module = _Clips(model)
    module.eval()
    sample = keras.ops.convert_to_tensor(np.zeros((2,) + shape[1:], "float32"))  # 2: batch 1 would specialise
    batch = torch.export.Dim("batch", min=1, max=65536)
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            module,
            (sample,),
            dynamo=True,
            input_names=["clips"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
        program.optimize()
        program.save(path)


def load_exported(path):
    """A function clips -> logits (NumPy in and out) that runs an exported model with its own runtime.

    `path`: a SavedModel directory (TensorFlow), a `.onnx` file (onnxruntime) or a `.tflite` file (the
    LiteRT interpreter, `ai_edge_litert`, else TensorFlow's). Neither Keras nor vidtr_keras is used.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No exported model at {path!r}.")
    if path.endswith(".onnx"):
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run(clips):
            return session.run(None, {name: np.asarray(clips, "float32")})[0]

        return run
    if path.endswith(".tflite"):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        interpreter = Interpreter(model_path=path)

        def run(clips):
            clips = np.asarray(clips, "float32")
            entry = interpreter.get_input_details()[0]
            if tuple(entry["shape"]) != clips.shape:
                interpreter.resize_tensor_input(entry["index"], clips.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(entry["index"], clips)
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

        return run
    if os.path.isdir(path):
        import tensorflow as tf

        loaded = tf.saved_model.load(path)

        def run(clips):
            return loaded.serve(tf.constant(np.asarray(clips, "float32"))).numpy()

        return run
    raise ValueError(f"{path!r}: expected a SavedModel directory, a .onnx file or a .tflite file.")


__all__ = ["FORMATS", "ExportedModel", "check_supported", "export_model", "load_exported", "supported_formats"]
