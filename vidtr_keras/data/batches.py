"""`ArrayBatches`: a Keras `PyDataset` over arrays held in memory, in a seeded order that changes every epoch.

The generated datasets (procedural clips, fractal images) share it: the order of epoch e is a permutation
drawn from `(seed, stream, e)`, so a run is repeatable and an interrupted one resumes with the same order.
"""

import math

import keras
import numpy as np

from vidtr_keras.data.transforms import normalize


class ArrayBatches(keras.utils.PyDataset):
    """(normalize(inputs[rows]), labels[rows]) batches; subclasses set `inputs`, `labels` and call `_start()`.

    Args:
        batch_size: examples per batch.
        seed: the order's seed.
        stream: keeps the orders of different datasets with the same seed apart.
        shuffle: a new seeded order every epoch (call `on_epoch_end`, as `fit` does).
        **kwargs: `keras.utils.PyDataset` arguments (workers, ...).
    """

    def __init__(self, batch_size, seed, stream, shuffle, **kwargs):
        super().__init__(**kwargs)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.stream = int(stream)
        self.shuffle = bool(shuffle)
        self.epoch = 0

    def _start(self, inputs, labels):
        self.inputs, self.labels = inputs, labels
        self._order = self._make_order()

    def _make_order(self):
        if not self.shuffle:
            return np.arange(len(self.labels))
        return np.random.default_rng([self.seed, self.stream, self.epoch]).permutation(len(self.labels))

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range ({len(self)} batches).")
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return normalize(self.inputs[rows]), self.labels[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._make_order()
