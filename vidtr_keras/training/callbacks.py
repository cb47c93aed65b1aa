"""The per-epoch checkpoint of `train`, and the random-generator states that make `resume` exact."""

import dataclasses
import os
import time

import keras
import numpy as np
from keras import ops

from vidtr_keras import run_dir


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


def _seed_torch_for_epoch(seed, epoch):
    """Torch's dropout draws from torch's global generator, which Keras' torch data loader also draws
    from (a different number of times in a resumed run); seeding it from (seed, epoch) at the start of
    every epoch makes the epoch's dropout masks independent of what came before."""
    import torch

    torch.manual_seed(int(np.random.default_rng([int(seed) % 2**63, 3, int(epoch)]).integers(2**62)))


class EpochCheckpoint(keras.callbacks.Callback):
    """Sets the data epoch, then after every epoch writes the checkpoint and the CSV log.

    The files are those of the run-directory format (`vidtr_keras.run_dir`). `log`, if given, is
    called with a line of text when videos could not be decoded.
    """

    def __init__(self, output, config, datasets, history, schedule, log=None):
        super().__init__()
        self.output = output
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
            _seed_torch_for_epoch(self.config.seed, epoch)

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
        stem = f"epoch_{epoch + 1:03d}"
        run_dir.save_model_atomic(self.model, os.path.join(self.output, f"{stem}.keras"))
        run_dir.savez_atomic(os.path.join(self.output, f"{stem}.rng.npz"), rng_states(self.model))
        pointer = {
            "epoch": epoch + 1,
            "model": f"{stem}.keras",
            "rng": f"{stem}.rng.npz",
            "backend": keras.backend.backend(),
            "config": dataclasses.asdict(self.config),
            "history": self.history,
            "failures": failures,
        }
        run_dir.write_json(os.path.join(self.output, run_dir.CHECKPOINT_FILE), pointer)
        run_dir.write_log(os.path.join(self.output, run_dir.LOG_FILE), self.history)
        for name in os.listdir(self.output):
            if name.startswith("epoch_") and not name.startswith(stem):
                os.remove(os.path.join(self.output, name))
        if self.log is not None and failures:
            self.log(
                f"{len(failures)} video(s) could not be decoded and were replaced: " + ", ".join(sorted(failures)[:5])
            )
