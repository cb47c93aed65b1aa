"""Tubelet embedding, class tokens and position embeddings (with resizing) against the oracle."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidtr_keras.layers import ClassTokens, FlattenPatches, PositionEmbedding, TubeletEmbedding

import oracle
from helpers import run_compiled, to_numpy
from strategies import seeds


@given(
    pt=st.integers(1, 3),
    ph=st.integers(1, 4),
    pw=st.integers(1, 4),
    gt=st.integers(1, 3),
    gh=st.integers(1, 3),
    gw=st.integers(1, 3),
    d=st.integers(1, 6),
    c=st.integers(1, 3),
    seed=seeds,
)
def test_tubelet_embedding_matches_oracle(pt, ph, pw, gt, gh, gw, d, c, seed):
    rng = np.random.default_rng(seed)
    clip = rng.normal(size=(2, gt * pt, gh * ph, gw * pw, c)).astype("float32")
    layer = TubeletEmbedding(d, patch_size=(pt, ph, pw))
    layer.build(clip.shape)
    out = to_numpy(run_compiled(layer, clip))
    weight = np.transpose(to_numpy(layer.projection.kernel), (4, 3, 0, 1, 2))  # official (d, C, t, h, w)
    want = oracle.patch_embed(clip.astype("float64"), weight, to_numpy(layer.projection.bias))
    assert out.shape == (2, gt, gh, gw, d)
    np.testing.assert_allclose(out, want, atol=1e-4)


@pytest.mark.parametrize(
    "patch,name", [((2, 16, 16), "cubic 2x16^2"), ((4, 16, 16), "cubic 4x16^2"), ((1, 32, 32), "square 1x32^2")]
)
def test_table_4a_patchings_are_expressible(patch, name):
    layer = TubeletEmbedding(8, patch_size=patch)
    shape = layer.compute_output_shape((None, 8, 224, 224, 3))
    assert shape == (None, 8 // patch[0], 224 // patch[1], 224 // patch[2], 8), name


def _built(layer_cls, layout, t, grid, d, rng):
    layer = layer_cls(layout, t, grid)
    layer.build((None, t, grid[0], grid[1], d))
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    return layer


def _resize_oracle(x, old, new):
    """Multi-linear resize of the leading axes of x with the oracle's np.interp matrices."""
    for axis, (o, n) in enumerate(zip(old, new)):
        x = np.moveaxis(np.tensordot(oracle.interpolation_1d(n, o), np.moveaxis(x, axis, 0), axes=1), 0, axis)
    return x


@given(
    layout=st.sampled_from(["grid", "single"]),
    t=st.integers(1, 4),
    gh=st.integers(1, 3),
    gw=st.integers(1, 3),
    nt=st.integers(1, 6),
    nh=st.integers(1, 5),
    nw=st.integers(1, 5),
    seed=seeds,
)
def test_position_embedding_resizes_like_the_oracle(layout, t, gh, gw, nt, nh, nw, seed):
    d = 3
    rng = np.random.default_rng(seed)
    layer = _built(PositionEmbedding, layout, t, (gh, gw), d, rng)
    table = to_numpy(layer.embeddings)[0]
    got = to_numpy(run_compiled(layer, np.zeros((1, nt, nh, nw, d), "float32")))
    if layout == "single":
        body = _resize_oracle(table[1:].reshape(t, gh, gw, d), (t, gh, gw), (nt, nh, nw))
        want = np.concatenate([table[:1], body.reshape(-1, d)])[None]
    else:
        g = table.reshape(t + 1, gh * gw + 1, d)
        top = _resize_oracle(g[0, 1:].reshape(gh, gw, d), (gh, gw), (nh, nw)).reshape(1, -1, d)
        left = _resize_oracle(g[1:, :1], (t,), (nt,))
        body = _resize_oracle(g[1:, 1:].reshape(t, gh, gw, d), (t, gh, gw), (nt, nh, nw)).reshape(nt, -1, d)
        want = np.concatenate([np.concatenate([g[:1, :1], top], 1), np.concatenate([left, body], 1)], 0)[None]
    np.testing.assert_allclose(got, want, atol=1e-5)
    if (nt, nh, nw) == (t, gh, gw):
        np.testing.assert_array_equal(got.reshape(table.shape), table)


@given(
    t=st.integers(1, 4),
    gh=st.integers(1, 3),
    gw=st.integers(1, 3),
    nt=st.integers(1, 5),
    nh=st.integers(1, 4),
    seed=seeds,
)
def test_grid_class_tokens_layout_and_resize(t, gh, gw, nt, nh, seed):
    d = 2
    rng = np.random.default_rng(seed)
    layer = _built(ClassTokens, "grid", t, (gh, gw), d, rng)
    cls_t, cls_s = to_numpy(layer.temporal_class_tokens), to_numpy(layer.spatial_class_tokens)
    patches = rng.normal(size=(2, nt, nh, gw, d)).astype("float32")
    out = to_numpy(run_compiled(layer, patches))
    assert out.shape == (2, nt + 1, nh * gw + 1, d)
    np.testing.assert_array_equal(out[:, 1:, 1:], patches.reshape(2, nt, nh * gw, d))
    top = _resize_oracle(cls_t[0, 1:].reshape(gh, gw, d), (gh, gw), (nh, gw)).reshape(-1, d)
    np.testing.assert_allclose(out[0, 0], np.concatenate([cls_t[0, :1], top]), atol=1e-5)
    np.testing.assert_allclose(out[1, 1:, 0], _resize_oracle(cls_s[:, 0], (t,), (nt,)), atol=1e-5)


def test_single_class_token_and_flatten():
    layer = ClassTokens("single", 4, (2, 2))
    patches = np.arange(2 * 4 * 2 * 2 * 3, dtype="float32").reshape(2, 4, 2, 2, 3)
    cls = to_numpy(layer(patches))
    assert cls.shape == (2, 1, 3)
    np.testing.assert_array_equal(cls[0], cls[1])
    flat = to_numpy(FlattenPatches()(patches))
    np.testing.assert_array_equal(flat, patches.reshape(2, 4, 4, 3))


def test_symbolic_none_frames_and_sizes():
    x = keras.Input((None, None, None, 3))
    patches = TubeletEmbedding(8, (2, 4, 4))(x)
    assert tuple(patches.shape) == (None, None, None, None, 8)
    assert tuple(ClassTokens("grid", 4, (2, 2))(patches).shape) == (None, None, None, 8)
    assert tuple(PositionEmbedding("single", 4, (2, 2))(patches).shape) == (1, None, 8)
    y = keras.Input((8, 16, 16, 3))
    p = TubeletEmbedding(8, (2, 4, 4))(y)
    assert tuple(PositionEmbedding("grid", 4, (4, 4))(p).shape) == (1, 5, 17, 8)
