"""One way to turn a model spec into a model: `load_model(spec, ...)`.

A spec is tried as, in this order:

1. a preset directory (`config.json`, see `vidtr_keras.models.preset_dir`);
2. a `vidtr train` run directory (`checkpoint.json`): its last checkpoint, itself a preset directory;
3. a `.keras` file;
4. an official checkpoint of the released code (`.pth`, `.pt`, `.bin`, `.safetensors`, `.npz`),
   converted on the fly;
5. a preset name (`vidtr_keras.preset_names()`): built, randomly initialised unless `weights` are given.

The converter of official checkpoints (`vidtr_keras.convert.gluonmm`) is a plug-in: `convert/` sits
above `models/` in the package's layer order, so it is imported inside the function, only when such a
file is loaded, the way keras-hub's preset loader picks a converter by the format it finds. The same
plug-in reads official checkpoints given as `weights`.

`VidTrVideoClassifier.from_preset`, training, the apps and every `vidtr` command load models here.
"""

import dataclasses
import os

import keras

from vidtr_keras.models import preset_dir
from vidtr_keras.models.backbone import VidTrBackbone
from vidtr_keras.models.classifier import VidTrClassifier
from vidtr_keras.models.presets import get_preset, preset_names

KINDS = ("preset directory", "run directory", ".keras file", "official checkpoint", "preset name")


def build_model(preset, num_classes=None, head_dropout=0.5, **overrides):
    """A `keras.Model` (a `VidTrClassifier`) on (batch, frames, height, width, channels) clips.

    Args:
        preset: a name from `preset_names()` (e.g. "vidtr_s", "cvidtr_s", "vidtr_tiny").
        num_classes: classifier width; the preset's default (400 for the Kinetics models) when None.
        head_dropout: dropout before the classifier.
        **overrides: any `VidTrBackbone` argument, e.g. `num_frames=16`, `mlp_activation="gelu"`,
            `attention="spatial_temporal"`, `pool_layers=(1, 3)`.

    Example:
    >>> model = build_model("vidtr_tiny", num_classes=5)
    >>> model(keras.ops.zeros((1, 4, 32, 32, 3))).shape
    (1, 5)
    """
    entry = get_preset(preset)
    config = entry["config"]
    unknown = sorted(set(overrides) - set(_backbone_args()))
    if unknown:
        raise TypeError(f"Unknown override(s) {unknown}; VidTrBackbone accepts {sorted(_backbone_args())}.")
    config.update(overrides)
    backbone = VidTrBackbone(**config, name=f"{preset}_backbone")
    classes = entry["num_classes"] if num_classes is None else num_classes
    return VidTrClassifier(backbone, classes, dropout=head_dropout, name=preset)


def _backbone_args():
    import inspect

    return [p for p in inspect.signature(VidTrBackbone.__init__).parameters if p not in ("self", "kwargs")]


@dataclasses.dataclass
class LoadedModel:
    """What `load_model` found.

    Attributes:
        model: the `keras.Model`.
        kind: which kind of spec it was (one of `KINDS`).
        source: the file or directory the model came from (the checkpoint of a run directory), or the
            preset name.
        notes: what was loaded, one line each (e.g. "classifier replaced: 400 -> 4 classes").
        class_names: the stored class names (preset and run directories), or None.
        clip: the clip geometry the model was trained on ({"clip_len", "rate", "crop_size"}) where
            the spec records it (run directories), else None.
    """

    model: keras.Model
    kind: str
    source: str
    notes: list
    class_names: list = None
    clip: dict = None

    @property
    def rate(self):
        """The frame rate (one frame in `rate`) the model was trained with, or None when unknown."""
        return (self.clip or {}).get("rate")


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
    if num_classes is None or getattr(model, "num_classes", None) == int(num_classes):
        return model
    if not isinstance(model, VidTrClassifier):
        raise ValueError(
            f"The model has {model.output_shape[-1]} outputs, {num_classes} classes are needed, and it is not a "
            "VidTrClassifier whose classifier could be replaced."
        )
    return VidTrClassifier(model.backbone, int(num_classes), dropout=model.dropout, name=model.name)


def _gluonmm():
    # The plug-in for official checkpoints (see the module docstring).
    from vidtr_keras.convert import gluonmm

    return gluonmm


def _is_official_file(path):
    return _gluonmm().is_checkpoint_file(path)


def _build_preset(name, weights, num_classes, overrides):
    """The preset's model, its classifier as wide as the weights' when they say (else `num_classes`);
    returns (model, what to load: the weights path, or the official checkpoint's state dict, or None)."""
    stored = None
    if weights is not None and weights.endswith(".weights.h5"):
        stored = _num_classes_in_weights_file(weights)
    elif weights is not None:
        weights = _gluonmm().load_checkpoint(weights)  # read once, loaded below
        stored = int(weights["fc.weight"].shape[0]) if "fc.weight" in weights else None
    return build_model(name, num_classes=stored or num_classes, **overrides), weights


def _load_weights(model, spec, weights, path, notes):
    """Loads `weights` (a `.weights.h5` path, an official checkpoint's path or state dict) into `model`,
    replacing an official checkpoint's classifier when its width differs; returns the model."""
    if isinstance(weights, dict) or not path.endswith(".weights.h5"):
        gluonmm = _gluonmm()
        state_dict = weights if isinstance(weights, dict) else gluonmm.load_checkpoint(path)
        stored = int(state_dict["fc.weight"].shape[0]) if "fc.weight" in state_dict else None
        if stored is not None:
            model = replace_head(model, stored)
        gluonmm.load_state_dict(model, state_dict, context=f"`weights` {path}")
        notes.append(f"official checkpoint {path}" + (f" ({stored} classes)" if stored else ""))
        return model
    stored = _num_classes_in_weights_file(path)
    try:
        model.load_weights(path)
    except ValueError as err:
        raise ValueError(f"The weights {path!r} do not fit {spec}: {err}") from err
    notes.append(f"weights {path}" + (f" ({stored} classes)" if stored else ""))
    return model


def _check_weights(weights):
    if weights is None:
        return None
    weights = os.fspath(weights)
    if not os.path.exists(weights):
        raise FileNotFoundError(f"No weights file at {weights!r}.")
    if not (weights.endswith(".weights.h5") or _is_official_file(weights)):
        raise ValueError(
            f"`weights` {weights!r}: expected a .weights.h5 file or an official checkpoint (.pth, .pt, .bin, "
            ".safetensors, .npz)."
        )
    return weights


def load_model(spec, weights=None, num_classes=None, overrides=None, config=None, compile=False):
    """A model from any spec (see the module docstring).

    Args:
        spec: a preset directory, a `vidtr train` run directory, a `.keras` file, an official
            checkpoint or a preset name (a `str` or a path).
        weights: optional `.weights.h5` file or official checkpoint to load into the model.
        num_classes: the classes the caller needs; the classifier is replaced by a new one when the
            model or the weights have another number (the notes say so).
        overrides: `VidTrBackbone` arguments for a model built from a preset name, e.g.
            `{"remat": True}` or `{"dtype": "mixed_bfloat16"}` (a saved model keeps its own).
        config: the official constructor arguments of an official checkpoint given as `spec`, when
            neither the file nor its name says them (see `convert.gluonmm.checkpoint_config`).
        compile: restore the optimizer (with its state), loss and metrics a saved model was compiled
            with, to continue training it; a model built from a preset name is never compiled.

    Returns:
        a `LoadedModel`.

    Raises:
        FileNotFoundError: a path that does not exist, or a directory that is neither a preset nor a
            run directory. ValueError: a spec that is none of the kinds above (the message lists what
            was tried), or weights or overrides that do not fit the model.
    """
    notes = []
    overrides = dict(overrides or {})
    spec = os.fspath(spec)
    weights = _check_weights(weights)
    class_names = clip = None
    source = spec
    if os.path.isdir(spec):
        if preset_dir.is_preset_dir(spec):
            kind = "preset directory"
        elif preset_dir.is_run_dir(spec):
            kind = "run directory"
            source = preset_dir.last_checkpoint(spec)
        else:
            raise FileNotFoundError(
                f"{spec!r} is a directory but neither a preset directory (no {preset_dir.CONFIG_FILE}) nor a "
                f"`vidtr train` run directory (no {preset_dir.RUN_POINTER_FILE})."
            )
        model = preset_dir.load_preset(source, compile=compile)
        class_names = preset_dir.stored_class_names(source)
        clip = preset_dir.read_metadata(source).get("clip")
        notes.append(f"last checkpoint {source}" if kind == "run directory" else f"preset directory {spec}")
    elif os.path.isfile(spec) and spec.endswith(".keras"):
        kind = ".keras file"
        model = keras.saving.load_model(spec, compile=compile)
        notes.append(f"model {spec}")
    elif os.path.isfile(spec) and _is_official_file(spec):
        kind = "official checkpoint"
        model = _gluonmm().from_checkpoint(spec, config)
        notes.append(f"official checkpoint {spec} (converted)")
    elif spec in preset_names():
        kind = "preset name"
        model, to_load = _build_preset(spec, weights, num_classes, overrides)
        if weights is None:
            notes.append(f"preset {spec} (randomly initialised)")
    elif os.path.exists(spec):
        raise ValueError(
            f"`model` {spec!r} is none of: a preset directory, a `vidtr train` run directory, a .keras file, an "
            "official checkpoint (.pth, .pt, .bin, .safetensors, .npz) or a preset name. A .weights.h5 file holds "
            "no architecture: give it as `weights` with a preset name."
        )
    elif os.sep in spec or spec.endswith((".keras", ".h5", ".pth", ".pt", ".bin", ".safetensors", ".npz")):
        raise FileNotFoundError(f"No model at {spec!r} (no such file or directory).")
    else:
        raise ValueError(
            f"Unknown model {spec!r}: not a file or directory (preset directory, run directory, .keras file, "
            f"official checkpoint), and not a preset ({', '.join(preset_names())})."
        )
    if overrides and kind != "preset name":
        raise ValueError(
            f"`model` {spec!r} is a saved model ({kind}), which keeps its own configuration; "
            f"{sorted(overrides)} apply only to a model built from a preset."
        )
    if config is not None and kind != "official checkpoint":
        raise ValueError(f"`config` describes an official checkpoint; {spec!r} is a {kind}.")
    if weights is not None:
        model = _load_weights(model, spec, to_load if kind == "preset name" else weights, weights, notes)
    if num_classes is not None and getattr(model, "num_classes", None) not in (None, int(num_classes)):
        notes.append(f"classifier replaced: {model.num_classes} -> {num_classes} classes (new, untrained)")
        model = replace_head(model, num_classes)
        class_names = None  # the stored names describe the classifier that was replaced
    return LoadedModel(model, kind, source, notes, class_names, clip)


__all__ = ["KINDS", "LoadedModel", "build_model", "load_model", "replace_head"]
