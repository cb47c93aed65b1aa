"""Learning smoke test, per backend: a fixed seed, a bounded number of steps, accuracy well above
chance on the procedural direction task, fed by `ProceduralDataset` through `fit`.

The learner is a small convolutional network over the frames stacked as channels: on these 2 CPU
cores no tiny transformer gets off chance on direction within a test's budget (see
results/learning.md for the transformers at longer budgets). What this guards: the benchmark's
direction labels are learnable from its pixels on every backend, and the PyDataset feeds `fit`."""

import keras
import numpy as np

from vidtr_keras.data import procedural
from vidtr_keras.data.transforms import normalize

FRAMES, SIZE = 4, 16


def test_direction_is_learned_well_above_chance():
    train = procedural.ProceduralDataset("direction", "train", 256, batch_size=32, seed=0, frames=FRAMES, size=SIZE)
    # Clean clips (objects on flat grey) keep the step budget small; the labels are the same task's.
    train.clips, train.labels = procedural.generate("direction", 256, seed=0, frames=FRAMES, size=SIZE, clutter=False)
    test_clips, test_labels = procedural.generate(
        "direction", 128, seed=0, split="test", frames=FRAMES, size=SIZE, clutter=False
    )
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((FRAMES, SIZE, SIZE, 3)),
            # frames stacked as channels (cheap on every backend's CPU convolution)
            keras.layers.Permute((2, 3, 1, 4)),
            keras.layers.Reshape((SIZE, SIZE, FRAMES * 3)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train, epochs=10, verbose=0)  # 80 steps
    accuracy = float(np.mean(np.argmax(model.predict(normalize(test_clips), verbose=0), -1) == test_labels))
    assert accuracy >= 0.5, f"direction top-1 {accuracy:.2f} after 80 steps (chance 0.25)"
