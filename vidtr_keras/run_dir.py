"""The run-directory format: what `train` writes and `inference.load_model` reads.

A run directory holds, after every epoch,

- `epoch_NNN.keras`: the model with its optimizer state;
- `epoch_NNN.rng.npz`: the states of the model's random generators (dropout seeds);
- `checkpoint.json`: the pointer (epoch, the two file names above, the backend, the training
  configuration, the history and the videos that could not be decoded), written last, so a run killed
  at any moment leaves a consistent checkpoint;
- `log.csv`: one row per epoch; `classes.txt`: the class names, when the run was given them.

Every file is written to a temporary name and renamed. Older epoch files are removed once the pointer
has moved on.
"""

import csv
import json
import os

import numpy as np

CHECKPOINT_FILE = "checkpoint.json"
LOG_FILE = "log.csv"
CLASSES_FILE = "classes.txt"


def is_run_dir(path):
    """True when `path` is a directory written by `train` (it holds a checkpoint pointer)."""
    return os.path.isdir(path) and os.path.exists(os.path.join(path, CHECKPOINT_FILE))


def read_checkpoint(output):
    """The checkpoint pointer (a dict) of a run directory, or None when there is none yet."""
    path = os.path.join(output, CHECKPOINT_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def last_model_path(path):
    """The `.keras` file of the last checkpoint of a run directory."""
    pointer = read_checkpoint(path)
    if pointer is None:
        raise FileNotFoundError(f"{path!r} holds no {CHECKPOINT_FILE} (not a `vidtr train` run directory).")
    return os.path.join(path, pointer["model"])


def class_names_file(path):
    """The class-names file of a run directory, or None."""
    candidate = os.path.join(os.fspath(path), CLASSES_FILE)
    return candidate if os.path.isdir(path) and os.path.exists(candidate) else None


def stored_rate(path):
    """The frame rate a run directory was trained with, or None (not a run directory)."""
    pointer = read_checkpoint(path) if path and os.path.isdir(path) else None
    return None if pointer is None else pointer["config"].get("rate")


def write_json(path, obj):
    """Writes `obj` as JSON atomically (temporary file, then rename); creates the directory."""
    tmp = f"{path}.tmp"
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def save_model_atomic(model, path):
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".tmp-{name}")
    model.save(tmp)
    os.replace(tmp, path)


def savez_atomic(path, arrays):
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def write_log(path, history):
    """`log.csv` from the history (a list of per-epoch dicts), columns in order of first appearance."""
    columns = []
    for row in history:
        columns.extend(c for c in row if c not in columns)
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)
