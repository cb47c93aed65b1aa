"""Explicit cases (not hypothesis draws) for C-VidTr's path, run on every backend: temporal-spatial
attention with std-topK pooling, the official second softmax, several heads choosing frames
independently, the class token bypassing the separable layers, and joint attention after the last
pooling layer. On JAX hypothesis draws only a few examples per property and may never reach it.
"""

import numpy as np
import pytest

from vidtr_keras.convert import gluonmm
from vidtr_keras.layers import SeparableAttention, VidTrEncoderBlock

import oracle
from helpers import run_compiled, to_numpy
from strategies import attention_params, block_params, official_state_dict, set_attention_weights, set_block_weights


@pytest.mark.parametrize(
    "heads,t,drop,second_softmax", [(2, 5, 2, True), (3, 6, 3, True), (2, 5, 2, False), (4, 4, 1, True)]
)
def test_pooling_separable_attention_matches_oracle(heads, t, drop, second_softmax):
    d, s = 4 * heads, 3
    rng = np.random.default_rng(100 + heads + t)
    p = attention_params(rng, d, scale=0.8)
    x = rng.normal(size=(2, t, s, d)).astype("float32")
    layer = SeparableAttention(heads, order="temporal_spatial", frames_dropped=drop, second_softmax=second_softmax)
    layer.build((None, None, None, d))
    set_attention_weights(layer, p)
    got, sel = layer(x)
    want, idx = oracle.separable_attention(x.astype("float64"), p, heads, "temporal_spatial", drop, second_softmax)
    np.testing.assert_array_equal(to_numpy(sel).argmax(-1), idx)
    assert len({tuple(r) for r in idx.reshape(-1, t - drop)}) > 1  # heads / locations keep different frames
    np.testing.assert_allclose(to_numpy(got), want, atol=2e-4, rtol=1e-4)


def test_the_second_softmax_changes_the_output():
    """The cases above can tell the two softmax variants apart."""
    rng = np.random.default_rng(7)
    p = attention_params(rng, 8, scale=0.8)
    x = rng.normal(size=(2, 5, 3, 8))
    with_second, _ = oracle.separable_attention(x, p, 2, "temporal_spatial", 2, True)
    without, _ = oracle.separable_attention(x, p, 2, "temporal_spatial", 2, False)
    assert np.abs(with_second - without).max() > 1e-2


@pytest.mark.parametrize("heads", [2, 4])
def test_pooling_block_with_bypassing_class_token_matches_oracle(heads):
    d, t, s, drop = 4 * heads, 5, 3, 2
    rng = np.random.default_rng(heads)
    p = block_params(rng, d, 2 * d)
    x = rng.normal(size=(2, t, s, d)).astype("float32")
    cls = rng.normal(size=(2, 1, d)).astype("float32")
    pos = rng.normal(size=(1, 1 + t * s, d)).astype("float32")
    block = VidTrEncoderBlock(heads, 2 * d, "temporal_spatial", frames_dropped=drop, dropout=0.0, attention_dropout=0.0)
    block.build(x.shape)
    set_block_weights(block, p)
    tokens, class_token = block(x, position_embedding=pos, class_token=cls)
    want_tokens, want_cls = oracle.encoder_block(x.astype("float64"), p, heads, "temporal_spatial", pos, cls, drop)
    np.testing.assert_allclose(to_numpy(tokens), want_tokens, atol=5e-4, rtol=1e-4)
    np.testing.assert_allclose(to_numpy(class_token), want_cls, atol=5e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "layers,pools,keys",
    [
        (3, [0, 1], [2, 1]),  # pooling twice, then one joint layer over 1 + 2*S tokens
        (4, [1], [3]),  # a separable layer before pooling, two joint layers after
        (2, [0, 1], [1, 1]),  # pooling in the last layer: no joint layer, the class token stays apart
    ],
)
def test_compact_models_with_joint_layers_after_pooling_match_the_oracle(layers, pools, keys):
    config = {
        "cls": "CompactVidTr",
        "d_model": 12,
        "nhead": 3,
        "num_encoder_layers": layers,
        "dim_feedforward": 24,
        "patch_size": [1, 4, 4],
        "activity_num": 4,
        "temporal_size": 5,
        "normalize_before": True,
        "layer_pool": pools,
        "number_of_keys": keys,
    }
    rng = np.random.default_rng(layers)
    sd = official_state_dict(rng, config, (2, 2))
    model = gluonmm.from_state_dict(sd, config, image_size=(8, 8))
    joint = [kind for kind, _ in model.backbone.layer_plan if kind == "joint"]
    assert len(joint) == layers - 1 - pools[-1]
    clip = rng.normal(size=(2, 3, 5, 8, 8)).astype("float32")
    got = to_numpy(run_compiled(lambda x: model(x, training=False), np.transpose(clip, (0, 2, 3, 4, 1))))
    np.testing.assert_allclose(got, oracle.official_forward(sd, config, clip), atol=2e-4, rtol=1e-4)
