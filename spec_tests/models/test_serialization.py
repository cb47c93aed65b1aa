"""get_config / from_config and .keras round trips for every layer and tiny preset."""

import keras
import numpy as np
import pytest

from vidtr_keras import VidTrBackbone, build_model, get_preset
from vidtr_keras.layers import (
    ClassTokenReadout,
    ClassTokens,
    FlattenPatches,
    JoinClassToken,
    JointAttention,
    PositionEmbedding,
    SeparableAttention,
    TemporalAveragePooling,
    TemporalConvPooling,
    TopKStdPooling,
    TubeletEmbedding,
    VidTrEncoderBlock,
)

from helpers import run_compiled, to_numpy

RNG = np.random.default_rng(0)
GRID = RNG.normal(size=(2, 4, 3, 8)).astype("float32")
PATCHES = RNG.normal(size=(2, 4, 2, 2, 8)).astype("float32")

LAYER_CASES = [
    (
        TubeletEmbedding,
        {"hidden_dim": 8, "patch_size": (2, 4, 4)},
        (RNG.normal(size=(2, 4, 8, 8, 3)).astype("float32"),),
    ),
    (FlattenPatches, {}, (PATCHES,)),
    (ClassTokens, {"layout": "grid", "num_frames": 4, "grid_size": (2, 2)}, (PATCHES,)),
    (ClassTokens, {"layout": "single", "num_frames": 4, "grid_size": (2, 2)}, (PATCHES,)),
    (PositionEmbedding, {"layout": "grid", "num_frames": 4, "grid_size": (2, 2)}, (PATCHES,)),
    (PositionEmbedding, {"layout": "single", "num_frames": 4, "grid_size": (2, 2)}, (PATCHES,)),
    (JoinClassToken, {}, (GRID[:, :1, :1, :].reshape(2, 1, 8), GRID)),
    (ClassTokenReadout, {"mode": "corner"}, (GRID,)),
    (JointAttention, {"num_heads": 2, "dropout": 0.1}, (GRID.reshape(2, 12, 8),)),
    (SeparableAttention, {"num_heads": 2, "order": "spatial_temporal"}, (GRID,)),
    (SeparableAttention, {"num_heads": 4, "frames_dropped": 2, "keep_first": True}, (GRID,)),
    (TopKStdPooling, {"frames_dropped": 1, "second_softmax": False}, (np.abs(GRID[..., :3]),)),
    (TemporalAveragePooling, {"frames_dropped": 1}, (GRID,)),
    (TemporalConvPooling, {"stride": 2}, (GRID,)),
    (VidTrEncoderBlock, {"num_heads": 2, "mlp_dim": 16, "attention": "temporal_spatial", "frames_dropped": 1}, (GRID,)),
    (
        VidTrEncoderBlock,
        {"num_heads": 2, "mlp_dim": 16, "attention": "joint", "mlp_activation": "gelu"},
        (GRID.reshape(2, 12, 8),),
    ),
]


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


@pytest.mark.parametrize("cls,kwargs,inputs", LAYER_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_layer_config_round_trip_and_symbolic_call(cls, kwargs, inputs):
    layer = cls(**kwargs)
    out = layer(*inputs)
    config = layer.get_config()
    for key, value in kwargs.items():
        assert config[key] == value or tuple(np.atleast_1d(config[key])) == tuple(np.atleast_1d(value)), key
    clone = cls.from_config(config)
    clone(*inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(_first(clone(*inputs))), to_numpy(_first(out)), atol=1e-6)
    assert len(clone.weights) == len(layer.weights)
    # symbolic call gives the eager output's shape (batch left free)
    sym = [keras.Input(batch_shape=(None,) + x.shape[1:]) for x in inputs]
    sym_out = _first(cls(**kwargs)(*sym))
    assert tuple(sym_out.shape)[1:] == tuple(_first(out).shape)[1:]


@pytest.mark.parametrize("preset", ["vanilla_tiny", "vidtr_tiny", "cvidtr_tiny"])
def test_keras_file_round_trip(preset, tmp_path):
    model = build_model(preset)
    clip = np.random.default_rng(1).normal(size=(1, model.backbone.num_frames, 32, 32, 3)).astype("float32")
    want = to_numpy(run_compiled(lambda c: model(c, training=False), clip))
    path = tmp_path / f"{preset}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded).__name__ == "VidTrClassifier"
    assert loaded.backbone.get_config() == model.backbone.get_config()
    np.testing.assert_allclose(to_numpy(run_compiled(lambda c: loaded(c, training=False), clip)), want, atol=1e-6)
    weights = tmp_path / f"{preset}.weights.h5"
    model.save_weights(weights)
    fresh = build_model(preset)
    fresh.load_weights(weights)
    np.testing.assert_allclose(to_numpy(run_compiled(lambda c: fresh(c, training=False), clip)), want, atol=1e-6)


def test_backbone_config_round_trip_keeps_ablation_settings():
    config = {
        **get_preset("cvidtr_tiny")["config"],
        "pooling": "average",
        "mlp_activation": "gelu",
        "second_softmax": False,
    }
    backbone = VidTrBackbone(**config)
    clone = VidTrBackbone.from_config(backbone.get_config())
    for key in ("pooling", "mlp_activation", "second_softmax", "pool_layers", "frames_dropped", "joint_from_layer"):
        assert getattr(clone, key) == getattr(backbone, key)
