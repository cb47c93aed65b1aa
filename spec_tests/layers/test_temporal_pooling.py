"""std-topK pooling invariants and the Table 4d alternatives."""

import keras
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vidtr_keras.layers import TemporalAveragePooling, TemporalConvPooling, TopKStdPooling
from vidtr_keras.layers.attention import gather_frames

import oracle
from helpers import BACKEND, run_compiled, to_numpy
from strategies import seeds


def random_probs(rng, lead, t, sharpness=3.0):
    return oracle.softmax(rng.normal(0, sharpness, lead + (t, t))).astype("float32")


@given(t=st.integers(2, 9), data=st.data(), keep_first=st.booleans(), lead=st.sampled_from([(1,), (2, 3), (2, 2, 2)]))
def test_keeps_exactly_t_minus_k_frames_in_temporal_order_the_highest_std(t, data, keep_first, lead):
    k = data.draw(st.integers(1, t - 1 - int(keep_first))) if t - 1 - int(keep_first) >= 1 else 0
    assume(k > 0)  # no frame to drop with t=2 and keep_first: hypothesis discards the draw
    rng = np.random.default_rng(data.draw(seeds))
    probs = random_probs(rng, lead, t)
    pooled, sel = run_compiled(TopKStdPooling(k, second_softmax=False, keep_first=keep_first), probs)
    sel = to_numpy(sel)
    assert sel.shape == lead + (t - k, t)
    # one-hot rows, each frame at most once, ascending order
    np.testing.assert_array_equal(sel.sum(-1), 1.0)
    assert (sel.sum(-2) <= 1).all()
    idx = sel.argmax(-1)
    assert (np.diff(idx, axis=-1) > 0).all()
    # the kept ones are the highest-std rows (numpy's unbiased std)
    np.testing.assert_array_equal(idx, oracle.std_topk_indices(probs.astype("float64"), t - k, keep_first))
    std = probs.std(-1, ddof=1)
    kept_std = np.take_along_axis(std, idx, -1)
    dropped = np.ones_like(std, bool)
    np.put_along_axis(dropped, idx, False, -1)
    if keep_first:
        kept_std = kept_std[..., 1:]
        dropped[..., 0] = False
    worst_kept = kept_std.min(-1) if kept_std.shape[-1] else np.full(lead, np.inf)
    best_dropped = np.where(dropped, std, -np.inf).max(-1)
    assert (worst_kept >= best_dropped).all()
    # without the second softmax the pooled rows are exactly the kept rows
    np.testing.assert_allclose(to_numpy(pooled), np.take_along_axis(probs, idx[..., None], -2), atol=1e-6)


@given(t=st.integers(3, 8), seed=seeds, scale=st.sampled_from([0.5, 2.0, 8.0, 3.7, 0.13]))
def test_selection_invariant_to_positive_scaling_and_ddof(t, seed, scale):
    rng = np.random.default_rng(seed)
    # well-separated stds so float rounding cannot reorder them
    probs = random_probs(rng, (4,), t)
    std = probs.std(-1)
    gaps = np.diff(np.sort(std, -1), axis=-1)
    assume(gaps.min() >= 1e-4)  # near-equal stds could be reordered by float rounding
    layer = TopKStdPooling(t // 2)
    (_, sel), (_, sel_scaled) = run_compiled(lambda a, b: (layer(a), layer(b)), probs, probs * np.float32(scale))
    np.testing.assert_array_equal(to_numpy(sel), to_numpy(sel_scaled))
    idx = to_numpy(sel).argmax(-1)
    for ddof in (0, 1):
        s = probs.std(-1, ddof=ddof)
        want = np.sort(np.argsort(-s, -1, kind="stable")[..., : t - t // 2], -1)
        np.testing.assert_array_equal(idx, want)


def test_zero_frames_dropped_is_the_identity():
    probs = random_probs(np.random.default_rng(0), (2, 3), 5)
    pooled, sel = TopKStdPooling(0)(probs)
    np.testing.assert_array_equal(to_numpy(pooled), probs)
    np.testing.assert_array_equal(to_numpy(sel), np.broadcast_to(np.eye(5, dtype="float32"), (2, 3, 5, 5)))


def test_ties_go_to_the_earlier_frame_on_every_backend():
    # Rows 1, 2 and 4 are identical (same std); keeping 3 of 6 must take the highest (row 5) and then
    # rows 1 and 2, the earliest of the tied ones, whatever top_k would do on this backend.
    base = np.full((6, 6), 1 / 6, dtype="float32")
    peaked = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1], dtype="float32")
    base[1] = base[2] = base[4] = peaked
    base[5] = np.array([0.9, 0.02, 0.02, 0.02, 0.02, 0.02], dtype="float32")
    _, sel = TopKStdPooling(3)(base[None])
    assert to_numpy(sel)[0].argmax(-1).tolist() == [1, 2, 5]
    # all rows equal: the first ones are kept
    _, sel = TopKStdPooling(4)(np.full((1, 6, 6), 1 / 6, dtype="float32"))
    assert to_numpy(sel)[0].argmax(-1).tolist() == [0, 1]


def test_second_softmax_is_applied_to_the_kept_rows():
    probs = random_probs(np.random.default_rng(3), (2,), 6)
    pooled, sel = TopKStdPooling(2, second_softmax=True)(probs)
    idx = to_numpy(sel).argmax(-1)
    np.testing.assert_allclose(
        to_numpy(pooled), oracle.softmax(np.take_along_axis(probs, idx[..., None], -2)), atol=1e-6
    )


def _grad(fn, x):
    """d sum(fn(x)) / dx on the current backend (test-side backend code)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(fn(x))
        return tape.gradient(y, x).numpy()
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(lambda a: fn(a).sum())(x))
    import torch

    x = torch.tensor(x, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.numpy()


def test_gradients_reach_only_kept_frames():
    rng = np.random.default_rng(5)
    probs = random_probs(rng, (2, 3), 6)
    _, sel = TopKStdPooling(2)(probs)
    sel = to_numpy(sel)
    kept = sel.sum(-2) > 0  # (2, 3, 6) frames kept per leading index
    # gradient of the pooled probabilities w.r.t. the attention rows: zero on dropped rows
    layer = TopKStdPooling(2, second_softmax=False)
    weights = keras.ops.convert_to_tensor(rng.normal(size=(2, 3, 4, 6)).astype("float32"))
    g = _grad(lambda p: layer(p)[0] * weights, probs)
    assert np.all(g[~kept] == 0)
    assert np.all(np.abs(g[kept]).sum(-1) > 0)
    # gradient of the per-head residual gather w.r.t. the residual: zero exactly on dropped frames
    x = rng.normal(size=(2, 6, 3, 2, 4)).astype("float32")  # (b, T, S, h, dh)
    sel_heads = sel.reshape(2, 3, 1, 4, 6).repeat(2, axis=2)  # (b, S, h, K, T)
    g = _grad(lambda a: gather_frames(a, sel_heads) * 1.5, x)
    kept_bts = np.transpose(kept, (0, 2, 1))  # (b, T, S)
    assert np.all(g[~kept_bts] == 0) and np.all(g[kept_bts] == 1.5)


def test_std_gradient_is_finite_for_uniform_attention():
    probs = np.full((1, 4, 4), 0.25, dtype="float32")  # zero variance rows
    g = _grad(lambda p: TopKStdPooling(1)(p)[0], probs)
    assert np.isfinite(g).all()


@given(t=st.integers(2, 9), data=st.data(), keep_first=st.booleans())
def test_temporal_average_pooling_matches_oracle(t, data, keep_first):
    avail = t - int(keep_first)
    assume(avail >= 2)  # average pooling needs two frames to merge
    k = data.draw(st.integers(1, avail - 1))
    x = np.random.default_rng(data.draw(seeds)).normal(size=(2, t, 3, 4)).astype("float32")
    got = to_numpy(run_compiled(TemporalAveragePooling(k, keep_first=keep_first), x))
    if keep_first:
        want = np.concatenate([x[:, :1], oracle.adaptive_average(x[:, 1:], avail - k)], axis=1)
    else:
        want = oracle.adaptive_average(x, t - k)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_temporal_conv_pooling_is_a_strided_convolution_over_time():
    x = np.random.default_rng(1).normal(size=(2, 8, 3, 4)).astype("float32")
    layer = TemporalConvPooling(2)
    y = to_numpy(layer(x))
    assert y.shape == (2, 4, 3, 4)
    kernel, bias = (to_numpy(w) for w in layer.conv.weights)  # (2, 1, d, d), (d,)
    want = np.einsum("bjksd,kde->bjse", x.reshape(2, 4, 2, 3, 4), kernel[:, 0]) + bias
    np.testing.assert_allclose(y, want, atol=1e-5)
    with pytest.raises(ValueError, match="cannot take 8 frames"):
        TemporalConvPooling(3)(x)


def test_pooling_that_drops_every_frame_is_an_error():
    with pytest.raises(ValueError, match="drop every frame"):
        TopKStdPooling(4)(np.full((1, 4, 4), 0.25, dtype="float32"))
    with pytest.raises(ValueError, match="drop every frame"):
        TopKStdPooling(3, keep_first=True)(np.full((1, 4, 4), 0.25, dtype="float32"))
    with pytest.raises(ValueError, match="drop every frame"):
        TemporalAveragePooling(5)(np.zeros((1, 5, 2, 2), "float32"))


def test_pooling_symbolic_shapes():
    probs = keras.Input((3, None, None))
    pooled, sel = TopKStdPooling(2)(probs)
    assert tuple(pooled.shape) == (None, 3, None, None)
    tokens = keras.Input((8, 5, 4))
    assert tuple(TemporalAveragePooling(2)(tokens).shape) == (None, 6, 5, 4)
