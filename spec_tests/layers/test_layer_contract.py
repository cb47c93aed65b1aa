"""The Keras layer contract for every public layer, with Keras' own harness
(`keras.src.testing.TestCase.run_layer_test`, the checks keras core layers are tested with): the
`get_config` / `from_config` round trip, a symbolic and an eager call with the expected output shape,
`compute_output_shape`, the number of trainable and non-trainable weights, a training step, and a call
under the mixed_float16 policy.
"""

import keras
import pytest
from keras.src.testing import TestCase

import vidtr_keras.layers as vl

B, T, GH, GW, D = 2, 3, 2, 2, 8
S = GH * GW
PATCHES = (B, T, GH, GW, D)

# name -> (layer class, init kwargs, input shape(s), expected output shape(s), trainable weights, run training)
CASES = {
    "TubeletEmbedding": (
        vl.TubeletEmbedding,
        {"hidden_dim": D, "patch_size": (1, 4, 4)},
        (B, T, 8, 8, 3),
        PATCHES,
        2,
        True,
    ),
    "ClassTokens_grid": (
        vl.ClassTokens,
        {"layout": "grid", "num_frames": T, "grid_size": (GH, GW)},
        PATCHES,
        (B, T + 1, S + 1, D),
        2,
        True,
    ),
    "ClassTokens_single": (
        vl.ClassTokens,
        {"layout": "single", "num_frames": T, "grid_size": (GH, GW)},
        PATCHES,
        (B, 1, D),
        1,
        True,
    ),
    "PositionEmbedding_grid": (
        vl.PositionEmbedding,
        {"layout": "grid", "num_frames": T, "grid_size": (GH, GW)},
        PATCHES,
        (1, T + 1, S + 1, D),
        1,
        True,
    ),
    "PositionEmbedding_single": (
        vl.PositionEmbedding,
        {"layout": "single", "num_frames": T, "grid_size": (GH, GW)},
        PATCHES,
        (1, 1 + T * S, D),
        1,
        True,
    ),
    "FlattenPatches": (vl.FlattenPatches, {}, PATCHES, (B, T, S, D), 0, False),
    "ClassTokenReadout_first": (vl.ClassTokenReadout, {"mode": "first"}, (B, 1 + T * S, D), (B, D), 0, False),
    "ClassTokenReadout_corner": (vl.ClassTokenReadout, {"mode": "corner"}, (B, T + 1, S + 1, D), (B, D), 0, False),
    "JointAttention": (vl.JointAttention, {"num_heads": 2}, (B, 5, D), (B, 5, D), 4, True),
    "SeparableAttention": (vl.SeparableAttention, {"num_heads": 2}, (B, T, S, D), (B, T, S, D), 4, True),
    "SeparableAttention_pooling": (
        vl.SeparableAttention,
        {"num_heads": 2, "frames_dropped": 1},
        (B, T, S, D),
        ((B, T - 1, S, D), (B, S, 2, T - 1, T)),
        4,
        True,
    ),
    "TopKStdPooling": (
        vl.TopKStdPooling,
        {"frames_dropped": 1},
        (B, S, T, T),
        ((B, S, T - 1, T), (B, S, T - 1, T)),
        0,
        False,
    ),
    "TemporalAveragePooling": (
        vl.TemporalAveragePooling,
        {"frames_dropped": 1},
        (B, T, S, D),
        (B, T - 1, S, D),
        0,
        False,
    ),
    "TemporalConvPooling": (vl.TemporalConvPooling, {"stride": 2}, (B, 4, S, D), (B, 2, S, D), 2, True),
    "VidTrEncoderBlock": (
        vl.VidTrEncoderBlock,
        {"num_heads": 2, "mlp_dim": 16, "dropout": 0.0, "attention_dropout": 0.0},
        (B, T, S, D),
        (B, T, S, D),
        12,
        True,
    ),
    "VidTrEncoderBlock_drop_path": (
        vl.VidTrEncoderBlock,
        {"num_heads": 2, "mlp_dim": 16, "dropout": 0.0, "attention_dropout": 0.0, "drop_path": 0.2},
        (B, T, S, D),
        (B, T, S, D),
        12,
        True,
    ),
    "DropPath": (vl.DropPath, {"rate": 0.3}, (B, T, S, D), (B, T, S, D), 0, False),
    "VidTrEncoderBlock_joint": (
        vl.VidTrEncoderBlock,
        {"num_heads": 2, "mlp_dim": 16, "attention": "joint"},
        (B, 5, D),
        (B, 5, D),
        12,
        True,
    ),
}


class _Harness(TestCase):
    def runTest(self):  # unittest needs a test method to instantiate the case outside a unittest run
        pass


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_contract(case):
    layer_cls, kwargs, input_shape, output_shape, trainable, training = CASES[case]
    _Harness().run_layer_test(
        layer_cls,
        init_kwargs=kwargs,
        input_shape=input_shape,
        expected_output_shape=output_shape,
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=None,
        run_training_check=training,
        run_mixed_precision_check=True,
    )


def test_every_public_layer_has_a_contract_case():
    public = {
        n for n in vl.__all__ if isinstance(getattr(vl, n), type) and issubclass(getattr(vl, n), keras.layers.Layer)
    }
    covered = {CASES[c][0].__name__ for c in CASES} | {"JoinClassToken"}
    missing = sorted(public - covered - {"VidTrPreprocessor"})
    assert not missing, f"public layers without a contract case: {missing}"


def test_join_class_token_contract():
    """The two-input layer, whose call signature (class_token, patches) the harness cannot pass: the
    same checks by hand."""
    import numpy as np

    layer = vl.JoinClassToken()
    clone = vl.JoinClassToken.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    cls, patches = keras.Input((1, D), batch_size=B), keras.Input((T, S, D), batch_size=B)
    symbolic = layer(cls, patches)
    assert tuple(symbolic.shape) == (B, 1 + T * S, D)
    assert tuple(layer.compute_output_shape((B, 1, D), (B, T, S, D))) == (B, 1 + T * S, D)
    c, x = np.ones((B, 1, D), "float32"), np.zeros((B, T, S, D), "float32")
    out = keras.ops.convert_to_numpy(clone(c, x))
    assert out.shape == (B, 1 + T * S, D) and (out[:, 0] == 1).all() and (out[:, 1:] == 0).all()
    assert not layer.weights
