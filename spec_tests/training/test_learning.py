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


def test_learning_run_trains_both_regimes_and_the_shuffled_frames_control(tmp_path, capsys):
    """`python -m reproduce learning`'s worker on a tiny spec, in this process: the transformer in both
    regimes (the pretrained one inflated from an image ViT made by `pretrain_images` to fit it), the
    Conv3D from scratch only, each run tested on plain and on shuffled-frames test clips; the finished
    runs kept in the partial-results file, which a run started again does not train again."""
    import json

    import pytest

    from reproduce.learning import recipe, worker

    if keras.backend.backend() != recipe.BACKEND:
        pytest.skip(f"the learning run trains on {recipe.BACKEND} whatever KERAS_BACKEND says: specified in that env")
    from vidtr_keras.training.pretrain_images import PretrainConfig, pretrain_images

    vit = str(tmp_path / "vit.npz")
    settings = dict(recipe.PRETRAIN, classes=3, images_per_class=4, val_images_per_class=0, epochs=1)
    pretrain_images(PretrainConfig(vit, warmup_epochs=0.0, **settings), verbose=0)

    inflated = worker.build("VidTr temp.-spat.", 0, recipe.PRETRAINED, vit)
    scratch = worker.build("VidTr temp.-spat.", 0)
    qkv = np.load(vit)["blocks.1.attn.qkv.weight"]
    kernel = inflated.backbone.get_layer("encoder_block_1").attn.in_proj_kernel
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), qkv.T, rtol=1e-6)
    assert not np.allclose(
        keras.ops.convert_to_numpy(scratch.backbone.get_layer("encoder_block_1").attn.in_proj_kernel), qkv.T
    )

    clips = np.arange(2 * recipe.FRAMES, dtype="float32").reshape(2, recipe.FRAMES, 1, 1, 1)
    shuffled = worker.shuffled_frames(clips)
    for clip, original in zip(shuffled, clips):
        assert sorted(clip.ravel()) == sorted(original.ravel()) and not np.array_equal(clip, original)

    partial = str(tmp_path / "partial.jsonl")
    spec = dict(recipe.QUICK, train=64, test=32, tasks=["direction"], threads=None, rollouts=None, vit=vit)
    spec.update(variants=["VidTr temp.-spat.", "Conv3D"], partial=partial)
    worker.worker(spec)
    runs = [json.loads(line[7:]) for line in capsys.readouterr().out.splitlines() if line.startswith("RESULT ")]
    assert worker.partial_runs(partial, worker.spec_key(spec)) == runs
    worker.worker(spec)  # an interrupted run started again: what is in the partial file is not trained again
    assert "RESULT " not in capsys.readouterr().out
    assert sorted((r["variant"], r["regime"]) for r in runs) == [
        ("Conv3D", recipe.SCRATCH),
        ("VidTr temp.-spat.", recipe.PRETRAINED),
        ("VidTr temp.-spat.", recipe.SCRATCH),
    ]
    assert all(0.0 <= r["top1"] <= 1.0 and 0.0 <= r["shuffled_top1"] <= 1.0 for r in runs)
