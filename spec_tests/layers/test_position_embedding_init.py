"""`position_embedding_stddev`: the std of the position embedding's initialisation.

The default stays 0.02 (ViT's and the official code's), so seeded random models, parity fixtures and
released-weight loading are unchanged; a larger value only changes how the embedding starts (the
learning report's experiment: the official temporal-spatial order trained from scratch tells frames
apart only when the embedding is not ~1/50 of the LayerNorm-ed tokens)."""

import os

import keras
import numpy as np
import pytest

from vidtr_keras import build_model
from vidtr_keras.layers.embedding import PositionEmbedding
from vidtr_keras.models import BackboneConfig, VidTrBackbone

from helpers import run_compiled, to_numpy

SMALL = {"num_frames": 4, "image_size": 16, "patch_size": (1, 4, 4)}  # a 5 x 17 token grid of width 32


def _embedding(model):
    return np.asarray(keras.ops.convert_to_numpy(model.backbone.get_layer("position_embedding").embeddings))


def test_default_is_vits_and_leaves_seeded_weights_unchanged():
    assert BackboneConfig().position_embedding_stddev == 0.02
    keras.utils.set_random_seed(3)
    default = build_model("vidtr_tiny", **SMALL)
    keras.utils.set_random_seed(3)
    explicit = build_model("vidtr_tiny", position_embedding_stddev=0.02, **SMALL)
    assert default.backbone.position_embedding_stddev == 0.02
    for a, b in zip(default.get_weights(), explicit.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Truncated at 2 std: |values| <= 0.04, std about 0.88 * 0.02.
    pos = _embedding(default)
    assert np.abs(pos).max() <= 0.04 + 1e-6
    assert 0.014 < pos.std() < 0.020


@pytest.mark.parametrize("stddev", [0.5, 1.0])
@pytest.mark.parametrize("preset", ["vidtr_tiny", "vanilla_tiny"])
def test_option_sets_the_initial_std(preset, stddev):
    keras.utils.set_random_seed(0)
    model = build_model(preset, position_embedding_stddev=stddev, **SMALL)
    pos = _embedding(model)
    # keras' TruncatedNormal keeps values within 2 std: the sample std is about 0.88 std.
    assert np.abs(pos).max() <= 2 * stddev + 1e-6
    np.testing.assert_allclose(pos.std(), 0.88 * stddev, rtol=0.1)
    assert abs(pos.mean()) < 0.1 * stddev
    # Only the position embedding's initialisation changes: the other weights match the default model's.
    keras.utils.set_random_seed(0)
    default = build_model(preset, **SMALL)
    for w, d in zip(model.weights, default.weights):
        if "position_embedding" not in w.path:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), keras.ops.convert_to_numpy(d))


def test_layer_argument_and_config_round_trip():
    layer = PositionEmbedding("grid", 4, (2, 2), initializer_stddev=0.3)
    clone = PositionEmbedding.from_config(layer.get_config())
    assert clone.initializer_stddev == 0.3
    # A config saved before the option existed still loads, with the old initialisation.
    old = layer.get_config()
    del old["initializer_stddev"]
    assert PositionEmbedding.from_config(old).initializer_stddev == 0.02


def test_backbone_get_config_round_trip_and_old_configs():
    backbone = VidTrBackbone(
        hidden_dim=16, num_layers=1, num_heads=2, mlp_dim=16, position_embedding_stddev=0.7, **SMALL
    )
    config = backbone.get_config()
    assert config["position_embedding_stddev"] == 0.7
    assert VidTrBackbone.from_config(config).position_embedding_stddev == 0.7
    del config["position_embedding_stddev"]  # saved before the option existed
    assert VidTrBackbone.from_config(config).position_embedding_stddev == 0.02


def test_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    model = build_model("vidtr_tiny", num_classes=3, position_embedding_stddev=0.5, **SMALL)
    clip = np.random.default_rng(0).normal(size=(2, 4, 16, 16, 3)).astype("float32")
    expected = to_numpy(run_compiled(lambda x: model(x, training=False), clip))  # one compiled call on JAX
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.backbone.position_embedding_stddev == 0.5
    np.testing.assert_allclose(_embedding(loaded), _embedding(model))
    np.testing.assert_allclose(to_numpy(run_compiled(lambda x: loaded(x, training=False), clip)), expected, atol=1e-5)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, float("nan"), float("inf"), "big", None, True])
def test_bad_value_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="position_embedding_stddev must be a positive number"):
        BackboneConfig(position_embedding_stddev=bad)
    with pytest.raises(ValueError, match="position_embedding_stddev"):
        build_model("vidtr_tiny", position_embedding_stddev=bad, **SMALL)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_layer_rejects_bad_stddev(bad):
    with pytest.raises(ValueError, match="initializer_stddev must be a positive finite number"):
        PositionEmbedding("grid", 4, (2, 2), initializer_stddev=bad)
