"""Models in, predictions out: loading a model (preset, `.keras` file or run directory, with optional
weights), the clip geometry it expects, and multi-view prediction of one video.

A model spec is a preset name (`vidtr_keras.preset_names()`), a `.keras` file, or a `vidtr train`
run directory (its last checkpoint). Weights may be a `.weights.h5` file or an official checkpoint
(`.pth`/`.pt`/`.npz`); when their classifier has another width than needed, the classifier is replaced
by a new one (fine-tuning).

Test views follow the paper's protocol: per video, 10 windows uniformly spaced x 3 crops = 30 views,
softmax scores averaged over the views (sigmoid for multi-label data).
"""

import dataclasses
import os

import keras
import numpy as np
from keras import ops

from vidtr_keras import run_dir
from vidtr_keras.data import load_views

WINDOW_FRAMES = 64  # the released configurations 8x8, 16x4 and 32x2 all span 64 frames


def _num_classes_in_weights_file(path):
    """Width of the classifier stored in a `.weights.h5` file of a `VidTrClassifier` (its one top-level
    Dense layer, `layers/dense/vars/0` of shape (d, classes)), or None."""
    import h5py

    with h5py.File(path, "r") as f:
        layers = f.get("layers")
        if layers is None:
            return None
        kernels = [
            layers[name]["vars"]["0"]
            for name in layers
            if name.startswith("dense") and "vars" in layers[name] and "0" in layers[name]["vars"]
        ]
        if len(kernels) == 1 and kernels[0].ndim == 2:
            return int(kernels[0].shape[1])
    return None


def replace_head(model, num_classes):
    """`model` with a new, randomly initialised classifier of `num_classes` (same backbone) when its
    width differs; the model itself otherwise."""
    from vidtr_keras.models import VidTrClassifier

    if num_classes is None or getattr(model, "num_classes", None) == int(num_classes):
        return model
    if not isinstance(model, VidTrClassifier):
        raise ValueError(
            f"The model has {model.output_shape[-1]} outputs, the data {num_classes} classes, and it is not a "
            "VidTrClassifier whose classifier could be replaced."
        )
    return VidTrClassifier(model.backbone, int(num_classes), dropout=model.dropout, name=model.name)


def load_model(spec, weights=None, num_classes=None, overrides=None):
    """A model from a preset name, a `.keras` file or a `vidtr train` output directory.

    Args:
        spec: the model (see the module docstring).
        weights: optional `.weights.h5` or official `.pth`/`.pt`/`.npz` checkpoint to load into it.
        num_classes: the classes the caller needs; the classifier is replaced when the model or the
            weights have another number (the report says so).
        overrides: `VidTrBackbone` arguments for a model built from a preset, e.g.
            `{"remat": True}` or `{"dtype": "mixed_bfloat16"}` (a saved model keeps its own).

    Returns:
        (model, notes) with notes a list of strings describing what was loaded.

    Raises:
        FileNotFoundError: a file that does not exist; ValueError: an unknown preset or a checkpoint
        that does not fit.
    """
    from vidtr_keras.models import build_model, preset_names

    notes = []
    overrides = dict(overrides or {})
    spec = os.fspath(spec)
    if os.path.isdir(spec):
        if not run_dir.is_run_dir(spec):
            raise FileNotFoundError(
                f"{spec!r} is a directory without a {run_dir.CHECKPOINT_FILE} (not a `vidtr train` output)."
            )
        spec = run_dir.last_model_path(spec)
        notes.append(f"last checkpoint {spec}")
    if spec.endswith(".keras"):
        if not os.path.exists(spec):
            raise FileNotFoundError(f"No model file at {spec!r}.")
        import vidtr_keras  # noqa: F401 - registers the serialisable classes

        if overrides:
            raise ValueError(
                f"`model` {spec!r} is a saved model, which keeps its own configuration; "
                f"{sorted(overrides)} apply only to a model built from a preset."
            )
        model = keras.saving.load_model(spec, compile=False)
        if not notes:
            notes.append(f"model {spec}")
    elif spec in preset_names():
        model = None  # built below, once the weights' width is known
    elif os.path.exists(spec):
        raise ValueError(f"`model` {spec!r}: expected a preset name, a .keras file or a `vidtr train` directory.")
    else:
        raise ValueError(f"Unknown model {spec!r}: not a file, and not a preset ({', '.join(preset_names())}).")

    if weights is not None:
        weights = os.fspath(weights)
        if not os.path.exists(weights):
            raise FileNotFoundError(f"No weights file at {weights!r}.")
        if weights.endswith(".weights.h5"):
            stored = _num_classes_in_weights_file(weights)
            if model is None:
                model = build_model(spec, num_classes=stored or num_classes, **overrides)
            try:
                model.load_weights(weights)
            except ValueError as err:
                raise ValueError(f"The weights {weights!r} do not fit {spec}: {err}") from err
            notes.append(f"weights {weights}" + (f" ({stored} classes)" if stored else ""))
        elif weights.endswith((".pth", ".pt", ".npz")):
            from vidtr_keras.convert import gluonmm

            state_dict = gluonmm.load_checkpoint(weights)
            stored = int(state_dict["fc.weight"].shape[0]) if "fc.weight" in state_dict else None
            if model is None:
                model = build_model(spec, num_classes=stored or num_classes, **overrides)
            elif stored is not None:
                model = replace_head(model, stored)
            gluonmm.load_state_dict(model, state_dict, context=f"`weights` {weights}")
            notes.append(f"official checkpoint {weights}" + (f" ({stored} classes)" if stored else ""))
        else:
            raise ValueError(f"`weights` {weights!r}: expected a .weights.h5, .pth, .pt or .npz file.")
    if model is None:
        model = build_model(spec, num_classes=num_classes, **overrides)
        notes.append(f"preset {spec} (randomly initialised)")
    if num_classes is not None and getattr(model, "num_classes", None) not in (None, int(num_classes)):
        notes.append(f"classifier replaced: {model.num_classes} -> {num_classes} classes (new, untrained)")
        model = replace_head(model, num_classes)
    return model, notes


@dataclasses.dataclass
class ClipGeometry:
    """What a clip for the model looks like: `clip_len` frames every `rate` frames, `crop_size` px."""

    clip_len: int
    rate: int
    crop_size: int

    def describe(self):
        return f"{self.clip_len}x{self.rate} frames at {self.crop_size}x{self.crop_size} px"


def clip_geometry(model, clip_len=None, rate=None, crop_size=None):
    """The model's clip geometry; `rate` defaults to 64 // clip_len (the released 8x8, 16x4, 32x2)."""
    backbone = getattr(model, "backbone", None)
    if clip_len is None:
        clip_len = getattr(backbone, "num_frames", None) or model.input_shape[1]
    if crop_size is None:
        size = getattr(backbone, "image_size", None) or model.input_shape[2:4]
        size = (size, size) if isinstance(size, int) else tuple(size)
        if size[0] is None or size[0] != size[1]:
            raise ValueError(f"The model's frames are {size}; give `crop_size` for a square crop.")
        crop_size = size[0]
    if rate is None:
        rate = max(1, WINDOW_FRAMES // int(clip_len))
    return ClipGeometry(int(clip_len), int(rate), int(crop_size))


def parse_views(text):
    """'10x3' -> (10, 3): windows x crops (crops 1 or 3)."""
    try:
        clips, crops = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"`views` must look like 10x3 (windows x crops), got {text!r}.") from None
    if clips < 1 or crops not in (1, 3):
        raise ValueError(f"`views` {text}: need at least one window and 1 or 3 crops.")
    return clips, crops


def _scores(logits, multi_label):
    logits = np.asarray(logits, np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def predict_views(model, views, batch_size=6, multi_label=False):
    """Scores (num_views, classes) of a stack of views, in batches of `batch_size` (the last one
    padded, so every call has the same shape: one compilation)."""
    views = np.asarray(views, np.float32)
    batch_size = max(1, min(int(batch_size), len(views)))
    out = []
    for start in range(0, len(views), batch_size):
        chunk = views[start : start + batch_size]
        real = len(chunk)
        if real < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - real,) + chunk.shape[1:], chunk.dtype)])
        logits = ops.convert_to_numpy(model.predict_on_batch(chunk))
        out.append(np.asarray(logits)[:real])
    return _scores(np.concatenate(out), multi_label)


def predict_video(
    model, path, geometry=None, num_clips=10, num_crops=3, batch_size=6, half_tick=False, multi_label=False
):
    """Scores of one video, averaged over its views: (scores (classes,), ClipViews)."""
    geometry = geometry or clip_geometry(model)
    views = load_views(path, geometry.clip_len, geometry.rate, geometry.crop_size, num_clips, num_crops, half_tick)
    scores = predict_views(model, views.views, batch_size, multi_label)
    return scores.mean(axis=0), views
