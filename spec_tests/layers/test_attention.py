"""Joint and separable attention against the numpy oracle, degenerate equalities and symmetries."""

import keras
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from vidtr_keras.layers import JointAttention, SeparableAttention

import oracle
from helpers import BACKEND, run_compiled, to_numpy
from strategies import attention_params, heads_and_width, seeds, set_attention_weights

ORDERS = ("temporal_spatial", "spatial_temporal", "spatial", "temporal")


def _separable(heads, d, params, **kwargs):
    layer = SeparableAttention(heads, **kwargs)
    layer.build((None, None, None, d))
    set_attention_weights(layer, params)
    return layer


@given(hw=heads_and_width, b=st.integers(1, 2), n=st.integers(1, 12), seed=seeds, qk_only=st.booleans())
def test_joint_attention_matches_oracle(hw, b, n, seed, qk_only):
    heads, d = hw
    rng = np.random.default_rng(seed)
    p = attention_params(rng, d)
    x = rng.normal(size=(b, n, d)).astype("float32")
    v = rng.normal(size=(b, n, d)).astype("float32") if qk_only else None
    layer = JointAttention(heads)
    layer.build((None, None, d))
    set_attention_weights(layer, p)
    got = to_numpy(run_compiled(lambda x, v: layer(x, value_inputs=v), x, v))
    np.testing.assert_allclose(got, oracle.joint_attention(x.astype("float64"), p, heads, v), atol=2e-4, rtol=1e-4)


@given(
    hw=heads_and_width,
    b=st.integers(1, 2),
    t=st.integers(1, 6),
    s=st.integers(1, 6),
    order=st.sampled_from(ORDERS),
    drop=st.integers(0, 5),
    second_softmax=st.booleans(),
    keep_first=st.booleans(),
    seed=seeds,
)
def test_separable_attention_matches_oracle(hw, b, t, s, order, drop, second_softmax, keep_first, seed):
    heads, d = hw
    if order == "spatial":
        drop = 0
    drop = min(drop, t - 1 - int(keep_first)) if t - 1 - int(keep_first) > 0 else 0
    rng = np.random.default_rng(seed)
    p = attention_params(rng, d)
    x = rng.normal(size=(b, t, s, d)).astype("float32")
    layer = _separable(
        heads, d, p, order=order, frames_dropped=drop, second_softmax=second_softmax, keep_first=keep_first
    )
    got = run_compiled(layer, x)
    want, idx = oracle.separable_attention(x.astype("float64"), p, heads, order, drop, second_softmax, keep_first)
    if drop:
        got, sel = got
        sel = to_numpy(sel)
        assert sel.shape == (b, s, heads, t - drop, t)
        np.testing.assert_array_equal(sel.argmax(-1), idx)
    np.testing.assert_allclose(to_numpy(got), want, atol=2e-4, rtol=1e-4)


@given(hw=heads_and_width, b=st.integers(1, 2), s=st.integers(1, 7), seed=seeds)
def test_one_frame_separable_equals_spatial(hw, b, s, seed):
    heads, d = hw
    rng = np.random.default_rng(seed)
    p = attention_params(rng, d)
    x = rng.normal(size=(b, 1, s, d)).astype("float32")
    sep = _separable(heads, d, p, order="temporal_spatial")
    spatial = _separable(heads, d, p, order="spatial")
    got_sep, got_spatial = run_compiled(lambda x: (sep(x), spatial(x)), x)
    np.testing.assert_allclose(to_numpy(got_sep), to_numpy(got_spatial), atol=1e-5)


@given(hw=heads_and_width, b=st.integers(1, 2), t=st.integers(1, 7), seed=seeds)
def test_one_patch_separable_equals_temporal(hw, b, t, seed):
    heads, d = hw
    rng = np.random.default_rng(seed)
    p = attention_params(rng, d)
    x = rng.normal(size=(b, t, 1, d)).astype("float32")
    sep = _separable(heads, d, p, order="temporal_spatial")
    temporal = _separable(heads, d, p, order="temporal")
    got_sep, got_temporal = run_compiled(lambda x: (sep(x), temporal(x)), x)
    np.testing.assert_allclose(to_numpy(got_sep), to_numpy(got_temporal), atol=1e-5)


def _mha_from(p, heads, d, attention_axes):
    mha = keras.layers.MultiHeadAttention(heads, d // heads, attention_axes=attention_axes)
    return mha


def _load_mha(mha, p, heads, d):
    dh = d // heads
    w, bias = p["in_proj_weight"], p["in_proj_bias"]
    for i, dense in enumerate((mha._query_dense, mha._key_dense, mha._value_dense)):
        dense.kernel.assign(w[i * d : (i + 1) * d].T.reshape(d, heads, dh).astype("float32"))
        dense.bias.assign(bias[i * d : (i + 1) * d].reshape(heads, dh).astype("float32"))
    mha._output_dense.kernel.assign(p["out_proj_weight"].T.reshape(heads, dh, d).astype("float32"))
    mha._output_dense.bias.assign(p["out_proj_bias"].astype("float32"))


@pytest.mark.parametrize("order,axes", [("spatial", (2,)), ("temporal", (1,))])
@given(hw=heads_and_width, t=st.integers(1, 5), s=st.integers(1, 5), seed=seeds)
@example(hw=(2, 2), t=2, s=1, seed=0)
def test_single_axis_modes_equal_keras_multi_head_attention(order, axes, hw, t, s, seed):
    heads, d = hw
    rng = np.random.default_rng(seed)
    p = attention_params(rng, d)
    x = rng.normal(size=(2, t, s, d)).astype("float32")
    ours = _separable(heads, d, p, order=order)
    got = to_numpy(run_compiled(ours, x))
    if BACKEND == "tensorflow":
        # Keras' MultiHeadAttention on TensorFlow disagrees with its own JAX and PyTorch backends when the
        # attended or the other axis of a rank-4 input has length 1 (seen with Keras 3.15 and TensorFlow
        # 2.21; the example above is one such case), so on TensorFlow the reference is the numpy oracle's
        # attention run over each row of the attended axis; on JAX and PyTorch it is Keras' layer.
        rows = np.moveaxis(x, axes[0], 2).reshape(-1, x.shape[axes[0]], d)
        want = oracle.joint_attention(rows.astype("float64"), p, heads)
        other = [n for i, n in enumerate(x.shape[:3]) if i != axes[0]]
        want = np.moveaxis(want.reshape(*other, x.shape[axes[0]], d), 2, axes[0])
    else:
        mha = _mha_from(p, heads, d, axes)
        mha.build(x.shape, x.shape)
        _load_mha(mha, p, heads, d)
        want = to_numpy(run_compiled(lambda x: mha(x, x), x))
    np.testing.assert_allclose(got, want, atol=1e-4)


@given(hw=heads_and_width, n=st.integers(1, 10), seed=seeds)
def test_joint_attention_equals_keras_multi_head_attention(hw, n, seed):
    heads, d = hw
    rng = np.random.default_rng(seed)
    p = attention_params(rng, d)
    x = rng.normal(size=(2, n, d)).astype("float32")
    mha = _mha_from(p, heads, d, None)
    mha.build(x.shape, x.shape)
    _load_mha(mha, p, heads, d)
    ours = JointAttention(heads)
    ours.build((None, None, d))
    set_attention_weights(ours, p)
    got, want = run_compiled(lambda x: (ours(x), mha(x, x)), x)
    np.testing.assert_allclose(to_numpy(got), to_numpy(want), atol=1e-4)


@given(hw=heads_and_width, t=st.integers(2, 6), s=st.integers(1, 5), order=st.sampled_from(ORDERS), data=st.data())
def test_permuting_frames_permutes_per_frame_outputs(hw, t, s, order, data):
    heads, d = hw
    seed = data.draw(seeds)
    perm = np.array(data.draw(st.permutations(range(t))))
    rng = np.random.default_rng(seed)
    p = attention_params(rng, d)
    x = rng.normal(size=(2, t, s, d)).astype("float32")
    layer = _separable(heads, d, p, order=order)
    permuted, plain = run_compiled(lambda a, b: (layer(a), layer(b)), x[:, perm], x)
    np.testing.assert_allclose(to_numpy(permuted), to_numpy(plain)[:, perm], atol=1e-5)


def test_separable_attention_symbolic_shapes_and_pooling_output():
    x = keras.Input((None, 5, 16))
    out, sel = SeparableAttention(4, frames_dropped=2)(x)
    assert tuple(out.shape) == (None, None, 5, 16)
    assert tuple(sel.shape) == (None, 5, 4, None, None)
    y = keras.Input((6, None, 16), batch_size=3)
    out, sel = SeparableAttention(2, frames_dropped=2)(y)
    assert tuple(out.shape) == (3, 4, None, 16)
    assert tuple(sel.shape) == (3, None, 2, 4, 6)


# Joint attention runs softmax(q k^T) v as one fused call (`keras.ops.dot_product_attention`) where the
# probabilities are neither returned nor dropped out, as `JointAttention(fused_attention=...)` says, else
# `vidtr_keras.config`'s switch, else by default on PyTorch only. Separable attention always runs the
# plain form. Both forms must give the same outputs and gradients.


@pytest.fixture
def fused_switch():
    """vidtr_keras.config, its fused-attention switch back on the automatic choice after the test."""
    from vidtr_keras import config

    yield config
    config.reset_fused_attention()


def test_fused_attention_only_where_it_applies():
    from vidtr_keras import config

    joint = JointAttention(2, dropout=0.1)
    on_torch = BACKEND == "torch"
    assert config.is_fused_attention_enabled() is None  # automatic: the backend's default
    assert joint.uses_fused_attention(training=False, return_attention_scores=False) is on_torch
    assert joint.uses_fused_attention(training=None, return_attention_scores=False) is on_torch
    assert not joint.uses_fused_attention(training=True, return_attention_scores=False)  # dropped out
    assert not joint.uses_fused_attention(training=False, return_attention_scores=True)  # returned
    assert JointAttention(2, dropout=0.0).uses_fused_attention(training=True) is on_torch
    assert not hasattr(SeparableAttention(2), "uses_fused_attention")  # always the plain form


def test_the_fused_attention_argument_beats_the_switch_which_beats_the_default(fused_switch):
    follows = JointAttention(2)
    on, off = JointAttention(2, fused_attention=True), JointAttention(2, fused_attention=False)
    for switch, want in ((fused_switch.enable_fused_attention, True), (fused_switch.disable_fused_attention, False)):
        switch()
        assert fused_switch.is_fused_attention_enabled() is want
        assert follows.uses_fused_attention() is want
        assert on.uses_fused_attention() and not off.uses_fused_attention()
        # Never where the fused call cannot do the work: probabilities returned or dropped out.
        assert not on.uses_fused_attention(return_attention_scores=True)
        assert not JointAttention(2, dropout=0.1, fused_attention=True).uses_fused_attention(training=True)
    fused_switch.reset_fused_attention()
    assert fused_switch.is_fused_attention_enabled() is None
    assert on.get_config()["fused_attention"] is True and follows.get_config()["fused_attention"] is None
    assert JointAttention.from_config(off.get_config()).fused_attention is False


@pytest.mark.parametrize("qk_only", [False, True])
def test_fused_and_plain_joint_attention_agree_on_every_backend(qk_only):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 13, 32)).astype("float32")
    values = rng.normal(size=(2, 13, 32)).astype("float32") if qk_only else None
    layer = JointAttention(4)
    outputs = {}
    for fused in (True, False):
        layer.fused_attention = fused
        assert layer.uses_fused_attention() is fused
        outputs[fused] = to_numpy(layer(x, value_inputs=values))
    np.testing.assert_allclose(outputs[True], outputs[False], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("qk_only", [False, True])
def test_fused_and_plain_joint_attention_agree_with_gradients(qk_only):

    if BACKEND != "torch":
        pytest.skip("gradients read through torch autograd here; the outputs agree on every backend (above)")
    import torch

    rng = np.random.default_rng(0)
    layer, x = JointAttention(4), rng.normal(size=(2, 13, 32))
    values = rng.normal(size=(2, 13, 32)) if qk_only else None
    results = {}
    for fused in (True, False):
        layer.fused_attention = fused
        inputs = torch.tensor(x, dtype=torch.float32, requires_grad=True)
        v = None if values is None else torch.tensor(values, dtype=torch.float32, requires_grad=True)
        out = layer(inputs, value_inputs=v, training=True)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        grads = [inputs.grad] + ([] if v is None else [v.grad]) + [w.value.grad for w in layer.trainable_variables]
        results[fused] = [to_numpy(out.detach())] + [to_numpy(g) for g in grads]
        for w in layer.trainable_variables:
            w.value.grad = None
    for got, want in zip(results[True], results[False]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
