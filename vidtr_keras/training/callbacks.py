"""The per-epoch checkpoint of `train`, and the random-generator states that make `resume` exact.

`train` writes a run directory (`vidtr_keras.models.preset_dir`): after every epoch the checkpoint as a
preset directory `epoch_NNN/` (the model with its optimizer state, the class names, the clip geometry,
plus `rng.npz`, the random generators' states, which Keras does not save), then the pointer
`checkpoint.json`, then `log.csv`. The checkpoint is written under a temporary name and renamed, and
the pointer is written last, so a run killed at any moment leaves a consistent checkpoint; older
checkpoints are removed once the pointer has moved on.
"""

import csv
import dataclasses
import os
import shutil
import time

import keras
import numpy as np
from keras import ops

from vidtr_keras.backends import torch_cpu
from vidtr_keras.models import preset_dir
from vidtr_keras.training.sharding import outside_distribution

LOG_FILE = "log.csv"
RNG_FILE = "rng.npz"


def rng_states(model):
    """The states of the model's random generators (dropout seeds on TensorFlow and JAX)."""
    states = {
        f"seed_{i}": np.asarray(ops.convert_to_numpy(v))
        for i, v in enumerate(v for v in model.variables if "seed_generator_state" in v.path)
    }
    return states


def restore_rng_states(model, states):
    seeds = [v for v in model.variables if "seed_generator_state" in v.path]
    stored = sorted((k for k in states if k.startswith("seed_")), key=lambda k: int(k.split("_")[1]))
    if len(stored) != len(seeds):
        raise ValueError(f"The checkpoint holds {len(stored)} random-generator states, the model has {len(seeds)}.")
    for variable, key in zip(seeds, stored):
        variable.assign(states[key].astype(variable.dtype))


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


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


class EpochCheckpoint(keras.callbacks.Callback):
    """Sets the data epoch, then after every epoch writes the checkpoint and the CSV log.

    The files are those of a run directory (see the module docstring). `class_names` go into every
    checkpoint; `log`, if given, is called with a line of text when videos could not be decoded. With
    `write=False` (the processes of a distributed run other than the one that writes) it sets the epochs
    and keeps the history, and writes nothing.
    """

    def __init__(self, output, config, datasets, history, schedule, log=None, class_names=None, write=True):
        super().__init__()
        self.write = write
        self.output = output
        self.class_names = class_names
        self.config = config
        self.datasets = datasets
        self.history = list(history)
        self.schedule = schedule
        self.log = log
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()
        for dataset in self.datasets:
            if dataset is not None and dataset.training:
                dataset.set_epoch(epoch)
        if keras.backend.backend() == "torch":
            torch_cpu.seed_for_epoch(self.config.seed, epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        failures = {}
        for dataset in self.datasets:
            if dataset is not None:
                failures.update(dataset.failures)
        row = {"epoch": epoch + 1, "lr": float(f"{self.schedule.at_epoch(epoch):.6g}")}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        row["seconds"] = round(time.time() - (self._started or time.time()), 3)
        row["videos_failed"] = len(failures)
        self.history.append(row)
        if not self.write:
            return
        stem = f"epoch_{epoch + 1:03d}"
        tmp = os.path.join(self.output, f".tmp-{stem}")
        _remove(tmp)  # left by a run killed while writing it
        clip = {key: getattr(self.config, key) for key in preset_dir.CLIP_KEYS}
        with outside_distribution():  # this process alone writes
            preset_dir.save_preset(self.model, tmp, self.class_names, clip, metadata={"epoch": epoch + 1})
            np.savez(os.path.join(tmp, RNG_FILE), **rng_states(self.model))
        _remove(os.path.join(self.output, stem))  # written by a run killed before its pointer moved here
        os.replace(tmp, os.path.join(self.output, stem))
        pointer = {
            "epoch": epoch + 1,
            "checkpoint": stem,
            "rng": f"{stem}/{RNG_FILE}",
            "backend": keras.backend.backend(),
            "config": dataclasses.asdict(self.config),
            "history": self.history,
            "failures": failures,
        }
        preset_dir.write_json(os.path.join(self.output, preset_dir.RUN_POINTER_FILE), pointer)
        write_log(os.path.join(self.output, LOG_FILE), self.history)
        for name in os.listdir(self.output):
            if name.startswith("epoch_") and name != stem:
                _remove(os.path.join(self.output, name))
        if self.log is not None and failures:
            self.log(
                f"{len(failures)} video(s) could not be decoded and were replaced: " + ", ".join(sorted(failures)[:5])
            )
