"""Learning smoke test, per backend: a VidTr built with `vidtr_keras.build_model` trained from a fixed
seed for a bounded number of steps (160) on the procedural direction task, fed by `ProceduralDataset`
through `fit`, reaches test accuracy well above chance (0.25, four directions).

What it shows: the model's training path (tubelet embedding, class-token grid, position embedding,
separable attention, head, gradients through all of them) learns a label that no single frame
gives, on every backend. What it does not show: that the paper's default configuration learns fast.
The model is made easy on purpose: one encoder layer of `vidtr_tiny` in the spatial-temporal order,
2-frame tubelets of 4x4 px (so each token already sees a little motion), the position embedding
initialised at std 0.5 instead of ViT's 0.02 (`position_embedding_stddev`), no dropout, and clean
clips (objects on flat grey, no clutter). Under this budget the official temporal-spatial order at
ViT's initialisation, cluttered clips or single-frame patches stay near chance; results/learning.md
has the variants at longer budgets."""

import keras
import numpy as np

from vidtr_keras import build_model
from vidtr_keras.data import procedural
from vidtr_keras.data.transforms import normalize

FRAMES, SIZE = 4, 16
SEED = 0


def train_and_test(seed, epochs=20):
    """Test top-1 (128 clean test clips) after `epochs` epochs of 8 steps (256 clips, batch 32).

    The assertion asks for 0.6, a margin below what this recipe reached on each backend over a few
    seeds when it was chosen (the easy-regime rows of results/learning.md train a close recipe, at
    ViT's position-embedding initialisation, over three seeds)."""
    train = procedural.ProceduralDataset("direction", "train", 256, batch_size=32, seed=0, frames=FRAMES, size=SIZE)
    # Clean clips keep the step budget small; the labels are the same task's.
    train.clips, train.labels = procedural.generate("direction", 256, seed=0, frames=FRAMES, size=SIZE, clutter=False)
    test_clips, test_labels = procedural.generate(
        "direction", 128, seed=0, split="test", frames=FRAMES, size=SIZE, clutter=False
    )
    keras.utils.set_random_seed(seed)
    model = build_model(
        "vidtr_tiny",
        num_classes=4,
        head_dropout=0.0,
        num_frames=FRAMES,
        image_size=SIZE,
        patch_size=(2, 4, 4),
        num_layers=1,
        attention="spatial_temporal",
        position_embedding_stddev=0.5,
        dropout=0.0,
        attention_dropout=0.0,
    )
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train, epochs=epochs, verbose=0)
    logits = model.predict(normalize(test_clips), batch_size=64, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == test_labels))


def test_vidtr_learns_direction_well_above_chance():
    accuracy = train_and_test(SEED)
    assert accuracy >= 0.6, f"direction top-1 {accuracy:.2f} after 160 steps (chance 0.25)"
