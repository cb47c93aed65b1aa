"""The one on-disk directory format of a model: the preset directory.

    my_preset/
      config.json        the model's Keras config (`keras.saving.serialize_keras_object`)
      model.weights.h5   its weights (a compiled model's file also holds the optimizer's state)
      metadata.json      versions, backend, parameter count, classes and, when known, the clip
                         geometry the model was trained on
      classes.txt        the class names, one a line (only when the model has them)

The first three are the files a `.keras` archive holds, unzipped, so a preset directory restores
exactly what `keras.saving.load_model` would (the random generators' states aside: Keras saves
neither). `VidTrVideoClassifier.save_to_preset` writes one; `vidtr train` writes every epoch's
checkpoint as one; `vidtr_keras.models.loading.load_model` reads them.

A run directory (the `output` of `vidtr train`) holds its last checkpoint as a preset directory:

    runs/demo/
      checkpoint.json    the pointer to the last checkpoint, written last (epoch, the checkpoint's
                         directory, the training configuration, history, videos that failed)
      epoch_002/         the last checkpoint: a preset directory (plus the random-generator states)
      log.csv            one row per epoch

Nothing here prints or trains: `vidtr_keras.training` writes run directories through these functions.
"""

import json
import os

import keras

from vidtr_keras.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
CLASSES_FILE = "classes.txt"
RUN_POINTER_FILE = "checkpoint.json"  # a run directory's pointer to its last checkpoint
CLIP_KEYS = ("clip_len", "rate", "crop_size")


def is_preset_dir(path):
    """True when `path` is a directory holding a preset (its `config.json`)."""
    return os.path.isdir(path) and os.path.exists(os.path.join(path, CONFIG_FILE))


def is_run_dir(path):
    """True when `path` is a directory written by `vidtr train` (it holds a checkpoint pointer)."""
    return os.path.isdir(path) and os.path.exists(os.path.join(path, RUN_POINTER_FILE))


def write_json(path, obj):
    """Writes `obj` as JSON atomically (a temporary file, then a rename); creates the directory."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def save_preset(model, directory, class_names=None, clip=None, metadata=None):
    """Writes `model` as a preset directory (see the module docstring); returns the directory.

    Args:
        model: a built `keras.Model` (compiled or not: a compiled model keeps its optimizer state).
        directory: created when missing; files already there are overwritten.
        class_names: names of the classifier's outputs; by default the model's own `class_names`.
        clip: the clip geometry the model was trained on, a dict with `clip_len`, `rate`, `crop_size`.
        metadata: further JSON-able entries for `metadata.json`.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    if class_names is None:
        class_names = getattr(model, "class_names", None)
    num_classes = getattr(model, "num_classes", None)
    if class_names is not None:
        class_names = [str(n) for n in class_names]
        if num_classes is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for a model of {num_classes} classes.")
    write_json(os.path.join(directory, CONFIG_FILE), keras.saving.serialize_keras_object(model))
    weights = os.path.join(directory, WEIGHTS_FILE)
    model.save_weights(f"{weights}.tmp.weights.h5")
    os.replace(f"{weights}.tmp.weights.h5", weights)
    classes = os.path.join(directory, CLASSES_FILE)
    if class_names:
        with open(f"{classes}.tmp", "w") as f:
            f.writelines(f"{n}\n" for n in class_names)
        os.replace(f"{classes}.tmp", classes)
    elif os.path.exists(classes):
        os.remove(classes)  # a stale file from an earlier model would name the wrong classes
    info = {
        "vidtr_keras_version": __version__,
        "keras_version": keras.__version__,
        "saved_with_backend": keras.backend.backend(),
        "parameter_count": int(model.count_params()),
        "num_classes": num_classes,
    }
    if clip is not None:
        info["clip"] = {k: clip[k] for k in CLIP_KEYS if clip.get(k) is not None}
    info.update(metadata or {})
    write_json(os.path.join(directory, METADATA_FILE), info)
    return directory


def read_metadata(directory):
    """`metadata.json` of a preset directory (an empty dict when there is none)."""
    path = os.path.join(os.fspath(directory), METADATA_FILE)
    return _read_json(path) if os.path.exists(path) else {}


def read_class_names(directory):
    """The class names stored in a preset directory, or None."""
    path = os.path.join(os.fspath(directory), CLASSES_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def stored_class_names(spec):
    """The class names stored with a model spec: those of a preset directory or of a run directory's
    last checkpoint; None for any other spec or when none were stored."""
    spec = os.fspath(spec)
    if is_run_dir(spec):
        spec = last_checkpoint(spec)
    return read_class_names(spec) if is_preset_dir(spec) else None


def load_preset(directory, compile=False):
    """The model of a preset directory (`keras.Model`), its weights loaded.

    Args:
        directory: a preset directory.
        compile: restore the loss, metrics and optimizer (with its state) the model was saved with,
            as `keras.saving.load_model(compile=True)` does; for continuing a training run.
    """
    directory = os.fspath(directory)
    if not is_preset_dir(directory):
        raise FileNotFoundError(f"{directory!r} is not a preset directory (no {CONFIG_FILE}).")
    weights = os.path.join(directory, WEIGHTS_FILE)
    if not os.path.exists(weights):
        raise FileNotFoundError(f"The preset directory {directory!r} has no {WEIGHTS_FILE}.")
    config = _read_json(os.path.join(directory, CONFIG_FILE))
    if not compile:
        config.pop("compile_config", None)
    model = keras.saving.deserialize_keras_object(config)
    model.load_weights(weights)
    return model


def read_run_pointer(directory):
    """The checkpoint pointer (a dict) of a run directory, or None when it holds none yet."""
    path = os.path.join(os.fspath(directory), RUN_POINTER_FILE)
    return _read_json(path) if os.path.exists(path) else None


def last_checkpoint(directory):
    """The preset directory of a run directory's last checkpoint."""
    pointer = read_run_pointer(directory)
    if pointer is None:
        raise FileNotFoundError(f"{directory!r} holds no {RUN_POINTER_FILE} (not a `vidtr train` run directory).")
    return os.path.join(os.fspath(directory), pointer["checkpoint"])


__all__ = [
    "CLASSES_FILE",
    "CLIP_KEYS",
    "CONFIG_FILE",
    "METADATA_FILE",
    "RUN_POINTER_FILE",
    "WEIGHTS_FILE",
    "is_preset_dir",
    "is_run_dir",
    "last_checkpoint",
    "load_preset",
    "read_class_names",
    "read_metadata",
    "read_run_pointer",
    "save_preset",
    "stored_class_names",
    "write_json",
]
