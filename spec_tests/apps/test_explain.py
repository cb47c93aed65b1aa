"""Attention maps and rollout: captured weights equal the numpy oracle's, the rollout's algebra,
the default forward pass untouched, the plot and `vidtr explain`."""

import functools

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidtr_keras.apps.explain import CLASS_ROW, attention_maps, attention_rollout, plot_rollout
from vidtr_keras.apps.rollout import rollout_from_maps
from vidtr_keras.convert import gluonmm
from vidtr_keras.layers import JointAttention, SeparableAttention, VidTrEncoderBlock
from vidtr_keras.models import build_model

import oracle
from helpers import BACKEND, load_fixture, to_numpy

VARIANTS = [
    ("vanilla_tiny", {}),
    ("vidtr_tiny", {}),
    ("vidtr_tiny", {"attention": "spatial_temporal"}),
    ("vidtr_tiny", {"attention": "spatial"}),
    ("cvidtr_tiny", {}),
    ("cvidtr_tiny", {"pooling": "average"}),
]


def _clip(frames, size=32, seed=0, batch=None):
    shape = (frames, size, size, 3) if batch is None else (batch, frames, size, size, 3)
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@functools.cache
def _cached(name, overrides=()):
    # One model, clip and set of maps per variant for the whole module: on JAX every eager op
    # compiles once per shape, so a new model per test would dominate the suite's time.
    model = build_model(name, **dict(overrides))
    clip = _clip(model.backbone.num_frames)
    return model, clip, attention_maps(model, clip)


def _model(name, **overrides):
    model, clip, _ = _cached(name, tuple(sorted(overrides.items())))
    return model, clip


def _maps(name, **overrides):
    return _cached(name, tuple(sorted(overrides.items())))[2]


# --------------------------------------------------------------------------------------------------
# Captured weights = the oracle's (official fixtures)


@functools.cache
def _fixture(name):
    """The official fixture's model and clips (the batch of test_parity, whose eager ops JAX has then
    compiled already), the captured maps and the oracle's records."""
    config, sd, clip, _ = load_fixture(name)
    model = gluonmm.from_state_dict(sd, config)
    channels_last = np.transpose(clip, (0, 2, 3, 4, 1))
    maps = attention_maps(model, channels_last)
    records = []
    oracle.official_forward(sd, config, clip, records=records)
    return config, maps, records, model, channels_last


def _fixture_maps(name):
    return _fixture(name)[:3]


@pytest.mark.parametrize("name", ["vidtr_split_t8", "vanilla_t4", "cvidtr_t8"])
def test_captured_weights_equal_the_oracle(name):
    _, maps, records = _fixture_maps(name)
    assert len(maps) == len(records)
    for entry, want in zip(maps, records):
        keys = {k for k in want if k != "kept"}
        assert keys == {k for k in ("joint", "temporal", "spatial", "temporal_before_pooling") if k in entry}
        for key in keys:
            assert entry[key].shape == want[key].shape, (entry["layer"], key)
            np.testing.assert_allclose(entry[key], want[key], atol=1e-4, err_msg=f"layer {entry['layer']} {key}")


def test_vidtr_grid_maps_include_the_class_tokens():
    _, maps, _ = _fixture_maps("vidtr_split_t8")
    first = maps[0]
    # 8 frames + the class row, 14x14 patches + the class column, 4 heads
    assert first["temporal"].shape == (2, 197, 4, 9, 9)
    assert first["spatial"].shape == (2, 9, 4, 197, 197)
    assert first["layout"] == "grid" and first["rows_in"] == first["rows_out"] == 9
    np.testing.assert_array_equal(first["row_frames"][0, 0, 0], [CLASS_ROW, 0, 1, 2, 3, 4, 5, 6, 7])


def test_cvidtr_pooled_rows_are_the_kept_frames():
    config, maps, records = _fixture_maps("cvidtr_t8")
    frames = np.broadcast_to(np.arange(8), records[0]["temporal"].shape[:3] + (8,))
    for i, (entry, want) in enumerate(zip(maps, records)):
        if i in config["layer_pool"]:
            frames = np.take_along_axis(frames, want["kept"], axis=-1)  # rows kept -> original frames
            kept = np.argmax(entry["selection"], axis=-1)
            np.testing.assert_array_equal(kept, want["kept"])
            # the captured rows are the kept rows of the full map, after the official second softmax
            full = oracle.take_rows(entry["temporal_before_pooling"].astype("float64"), kept)
            np.testing.assert_allclose(entry["temporal"], oracle.softmax(full), atol=1e-5)
        if entry["attention"] != "joint":
            np.testing.assert_array_equal(entry["row_frames"], frames, err_msg=f"layer {i}")
    assert [m["rows_out"] for m in maps[:6]] == [8, 6, 6, 4, 4, 2]
    # the frames kept differ between heads/columns, as std-topK selects per head and location
    assert len({tuple(r) for r in frames.reshape(-1, 2)}) > 1
    rollout = rollout_from_maps(maps, "first")
    hits = (frames[..., None] == np.arange(8)).any(axis=3).mean(axis=(1, 2))
    np.testing.assert_allclose(rollout.kept_fraction, hits)
    np.testing.assert_array_equal(rollout.row_frames, frames)


def test_cvidtr_joint_layers_after_pooling_are_captured():
    _, maps, records = _fixture_maps("cvidtr_t8")
    joint = [m for m in maps if m["attention"] == "joint"]
    assert [m["layer"] for m in joint] == [6, 7]
    for m in joint:
        assert m["joint"].shape == (2, 4, 1 + 2 * 196, 1 + 2 * 196)  # class token + 2 kept frames x 196
        np.testing.assert_allclose(m["joint"], records[m["layer"]]["joint"], atol=1e-4)
        assert m["row_frames"].shape == (2, 196, 4, 2)


# --------------------------------------------------------------------------------------------------
# The rollout itself


@pytest.mark.parametrize("name,overrides", VARIANTS)
def test_rollout_rows_sum_to_one(name, overrides):
    model, clip = _model(name, **overrides)
    r = attention_rollout(model, clip)
    for part in (r.temporal, r.spatial, r.joint):
        if part is not None:
            assert part.min() >= 0.0
            np.testing.assert_allclose(part.sum(axis=-1), 1.0, atol=1e-6)
    # the classified token's row of the product over all layers is a distribution over input tokens
    np.testing.assert_allclose(r.relevance.sum() + r.class_token_share, 1.0, atol=1e-5)
    np.testing.assert_allclose(r.frame_importance.sum(), 1.0, atol=1e-6)
    t, gh, gw = r.relevance.shape
    assert (t, gh, gw) == (model.backbone.num_frames, 4, 4)
    assert (r.joint is None) == (name != "vanilla_tiny" and name != "cvidtr_tiny")
    assert (r.temporal is None) == (name == "vanilla_tiny")


def _identity_maps(maps):
    """Every token attends only to itself; a pooled row of std-topK to the frame it kept."""
    out = []
    for m in maps:
        m = dict(m)
        for key in ("joint", "temporal", "spatial", "temporal_before_pooling"):
            if key in m:
                n = m[key].shape[-1]
                pooled = key == "temporal" and "selection" in m
                m[key] = m["selection"] if pooled else np.broadcast_to(np.eye(n), m[key].shape)
        out.append(m)
    return out


@pytest.mark.parametrize("name", ["vanilla_tiny", "vidtr_tiny"])
def test_identity_attention_gives_identity_rollout(name):
    model, _ = _model(name)
    r = rollout_from_maps(_identity_maps(_maps(name)), model.backbone.get_layer("class_token_readout").mode)
    for part in (r.temporal, r.spatial, r.joint):
        if part is not None:
            np.testing.assert_allclose(part, np.broadcast_to(np.eye(part.shape[-1]), part.shape), atol=1e-12)
    # every token attends only to itself: the class token keeps all the relevance
    np.testing.assert_allclose(r.class_token_share, 1.0)
    np.testing.assert_allclose(r.relevance, 0.0)


def test_identity_attention_with_pooling_keeps_the_selected_rows():
    maps = _maps("cvidtr_tiny")
    r = rollout_from_maps(_identity_maps(maps), "first")
    # with identity attention a pooled row is exactly its (head-averaged) selection, composed
    sel = np.mean(maps[1]["selection"], axis=2) @ np.mean(maps[0]["selection"], axis=2)
    np.testing.assert_allclose(r.temporal, sel, atol=1e-6)


def test_spatial_only_model_has_identity_temporal_rollout():
    model, clip = _model("vidtr_tiny", attention="spatial")
    r = attention_rollout(model, clip)
    np.testing.assert_array_equal(r.temporal, np.broadcast_to(np.eye(5), r.temporal.shape))
    assert not np.allclose(r.spatial, np.eye(17))  # its spatial attention is not trivial


def test_temporal_only_model_has_identity_spatial_rollout():
    model, clip = _model("vidtr_tiny", attention="temporal")
    r = attention_rollout(model, clip)
    np.testing.assert_array_equal(r.spatial, np.broadcast_to(np.eye(17), r.spatial.shape))


@given(st.integers(0, 2**31 - 1), st.sampled_from(["temporal_spatial", "spatial_temporal", "spatial", "temporal"]))
def test_rollout_of_random_stochastic_maps_is_stochastic(seed, order):
    """Any row-stochastic maps (not only softmax outputs of a model) give row-stochastic rollouts,
    and a relevance that sums to 1 over the input tokens."""
    rng = np.random.default_rng(seed)
    b, t, s, h = 2, 3, 5, 2

    def stochastic(shape):
        a = rng.random(shape) ** 3
        return a / a.sum(-1, keepdims=True)

    maps = []
    for i in range(3):
        m = {
            "layer": i,
            "attention": order,
            "pooling": None,
            "frames_dropped": 0,
            "layout": "grid",
            "grid_size": (1, s - 1),
            "rows_in": t,
            "rows_out": t,
            "row_frames": None,
        }
        if order != "spatial":
            m["temporal"] = stochastic((b, s, h, t, t))
        if order != "temporal":
            m["spatial"] = stochastic((b, t, h, s, s))
        maps.append(m)
    r = rollout_from_maps(maps)
    np.testing.assert_allclose(r.temporal.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(r.spatial.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(r.relevance.sum(axis=(1, 2, 3)) + r.class_token_share, 1.0, atol=1e-12)


@pytest.mark.parametrize("order", ["temporal_spatial", "spatial_temporal", "temporal"])
def test_rollout_through_std_topk_pooling_in_every_order(order):
    """Single layout (C-VidTr-like): a pooling separable layer (4 -> 3 frames, a different frame
    dropped per column and head), another separable layer and a joint layer."""
    rng = np.random.default_rng(0)
    b, t, s, h = 1, 4, 6, 2

    def stochastic(shape):
        a = rng.random(shape)
        return a / a.sum(-1, keepdims=True)

    drop = rng.integers(0, t, size=(b, s, h))
    keep = np.stack([np.delete(np.arange(t), d) for d in drop.reshape(-1)]).reshape(b, s, h, t - 1)
    selection = (keep[..., None] == np.arange(t)).astype("float64")
    common = {"layout": "single", "grid_size": (2, 3), "frames_dropped": 0, "pooling": None, "attention": order}
    rows_of = {"temporal_spatial": t - 1, "spatial_temporal": t, "temporal": None}[order]
    first = {
        **common,
        "layer": 0,
        "rows_in": t,
        "rows_out": t - 1,
        "pooling": "std_topk",
        "frames_dropped": 1,
        "selection": selection,
        "temporal": stochastic((b, s, h, t - 1, t)),
        "row_frames": keep,
    }
    second = {
        **common,
        "layer": 1,
        "rows_in": t - 1,
        "rows_out": t - 1,
        "temporal": stochastic((b, s, h, t - 1, t - 1)),
        "row_frames": keep,
    }
    if rows_of is not None:
        first["spatial"] = stochastic((b, rows_of, h, s, s))
        second["spatial"] = stochastic((b, t - 1, h, s, s))
    n = 1 + (t - 1) * s
    third = {
        **common,
        "layer": 2,
        "attention": "joint",
        "rows_in": t - 1,
        "rows_out": t - 1,
        "joint": stochastic((b, h, n, n)),
        "row_frames": keep,
    }
    r = rollout_from_maps([first, second, third], "first")
    assert r.temporal.shape == (b, s, t - 1, t) and r.spatial.shape == (b, t - 1, s, s)
    for part in (r.temporal, r.spatial, r.joint):
        np.testing.assert_allclose(part.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(r.relevance.sum() + r.class_token_share.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(r.kept_fraction, (keep[..., None] == np.arange(t)).any(axis=3).mean(axis=(1, 2)))


def test_relevance_follows_the_joint_rollout():
    """For the vanilla model the relevance is exactly the class row of the (T*S+1)^2 joint rollout."""
    model, clip = _model("vanilla_tiny")
    r = attention_rollout(model, clip)
    assert r.joint.shape == (65, 65)
    np.testing.assert_allclose(r.relevance.reshape(-1), r.joint[0, 1:], atol=1e-12)
    np.testing.assert_allclose(r.class_token_share, r.joint[0, 0], atol=1e-12)


def test_batch_and_single_clip_agree():
    model, clip = _model("vidtr_tiny")
    other = _clip(4, seed=1)
    maps = [attention_maps(model, c[None]) for c in (clip, other)]  # each with a batch axis of 1
    stacked = [
        {k: np.concatenate([a[k], b[k]]) if isinstance(a[k], np.ndarray) else a[k] for k in a} for a, b in zip(*maps)
    ]
    both = rollout_from_maps(stacked)
    one = attention_rollout(model, other)  # a single clip: no batch axis
    assert both.relevance.shape == (2, 4, 4, 4) and one.relevance.shape == (4, 4, 4)
    np.testing.assert_allclose(both.relevance[1], one.relevance, atol=1e-6)
    np.testing.assert_allclose(both.relevance[0], attention_rollout(model, clip).relevance, atol=1e-6)
    assert not np.allclose(both.relevance[0], both.relevance[1])


# --------------------------------------------------------------------------------------------------
# The default forward pass is unchanged


def _assert_same_outputs(scored, default, joint=False):
    """The pass that returns attention scores gives the default pass's outputs: bit for bit, except
    with joint attention on PyTorch, whose default inference runs fused (no attention map) while the
    scored pass runs the plain softmax(q k^T) v it takes the probabilities from: equal up to float
    rounding."""
    if joint and BACKEND == "torch":
        np.testing.assert_allclose(to_numpy(scored), to_numpy(default), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(to_numpy(scored), to_numpy(default))


@pytest.mark.parametrize("name,overrides", VARIANTS)
def test_default_forward_unchanged(name, overrides):
    model, clip = _model(name, **overrides)
    backbone = model.backbone
    default = to_numpy(backbone(clip[None], training=False))
    features, scores = backbone.call_with_attention_scores(clip[None])
    joint = any(isinstance(layer, JointAttention) for layer in backbone._flatten_layers())  # C-VidTr too
    _assert_same_outputs(features, default, joint=joint)
    assert len(scores) == backbone.num_layers


def test_layers_return_scores_only_when_asked():
    x = np.random.default_rng(0).normal(size=(2, 5, 12, 32)).astype("float32")  # (batch, T, S, d)
    layer = SeparableAttention(num_heads=4, frames_dropped=2)
    out, sel = layer(x)
    (out2, sel2), scores = layer(x, return_attention_scores=True)
    _assert_same_outputs(out, out2)
    np.testing.assert_array_equal(to_numpy(sel), to_numpy(sel2))
    assert set(scores) == {"temporal", "temporal_before_pooling", "selection", "spatial"}
    assert tuple(scores["temporal"].shape) == (2, 12, 4, 3, 5)
    assert tuple(scores["spatial"].shape) == (2, 3, 4, 12, 12)

    joint = JointAttention(num_heads=4)
    tokens = x.reshape(2, 60, 32)
    plain = joint(tokens)
    out, probs = joint(tokens, return_attention_scores=True)
    _assert_same_outputs(plain, out, joint=True)
    assert tuple(probs.shape) == (2, 4, 60, 60)

    block = VidTrEncoderBlock(4, 64, attention="temporal_spatial", dropout=0.0, attention_dropout=0.0)
    plain = block(x)
    out, scores = block(x, return_attention_scores=True)
    _assert_same_outputs(plain, out)
    assert set(scores) == {"temporal", "spatial"}


SYMBOLIC_CASES = [
    ("joint", 0, (2, 40, 32), (2, 40, 32), {"joint": (2, 4, 40, 40)}),
    (
        "temporal_spatial",
        2,
        (2, 5, 8, 32),
        (2, 3, 8, 32),
        {
            "temporal": (2, 8, 4, 3, 5),
            "temporal_before_pooling": (2, 8, 4, 5, 5),
            "selection": (2, 8, 4, 3, 5),
            "spatial": (2, 3, 4, 8, 8),
        },
    ),
    (
        "spatial_temporal",
        1,
        (2, 5, 8, 32),
        (2, 4, 8, 32),
        {
            "temporal": (2, 8, 4, 4, 5),
            "temporal_before_pooling": (2, 8, 4, 5, 5),
            "selection": (2, 8, 4, 4, 5),
            "spatial": (2, 5, 4, 8, 8),
        },
    ),
    ("spatial", 0, (2, 5, 8, 32), (2, 5, 8, 32), {"spatial": (2, 5, 4, 8, 8)}),
]


@pytest.mark.parametrize("attention,drop,shape,out_shape,score_shapes", SYMBOLIC_CASES)
def test_symbolic_scores_have_the_documented_shapes(attention, drop, shape, out_shape, score_shapes):
    block = VidTrEncoderBlock(4, 64, attention=attention, frames_dropped=drop)
    out, scores = block(keras.KerasTensor(shape), return_attention_scores=True)
    assert tuple(out.shape) == out_shape
    assert {k: tuple(v.shape) for k, v in scores.items()} == score_shapes
    assert tuple(block(keras.KerasTensor(shape)).shape) == out_shape  # default: the tokens alone


def test_eager_scores_have_the_documented_shapes():
    attention, drop, shape, out_shape, score_shapes = SYMBOLIC_CASES[1]
    block = VidTrEncoderBlock(4, 64, attention=attention, frames_dropped=drop)
    out, scores = block(np.random.default_rng(0).normal(size=shape).astype("float32"), return_attention_scores=True)
    assert tuple(out.shape) == out_shape
    assert {k: tuple(v.shape) for k, v in scores.items()} == score_shapes


# --------------------------------------------------------------------------------------------------
# Errors, plot and command


def test_bad_inputs_are_named():
    model, clip = _model("vidtr_tiny")
    with pytest.raises(ValueError, match="clip must be"):
        attention_maps(model, clip[0])
    with pytest.raises(ValueError, match="VidTr model"):
        attention_rollout(keras.Sequential([keras.layers.Dense(2)]), clip)
    with pytest.raises(ValueError, match="single clip"):
        plot_rollout(attention_rollout(model, clip[None]), clip)


def test_plot_rollout_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    model, clip = _model("cvidtr_tiny")
    r = attention_rollout(model, clip)
    frames = np.random.default_rng(0).integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "rollout.png"
    fig = plot_rollout(r, frames, title="cvidtr_tiny", frame_labels=[f"#{i}" for i in range(8)], path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    assert any(t.startswith("cvidtr_tiny\nWhere the classifying token looks") for t in texts)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 8  # one panel per frame
    bars = [ax for ax in fig.axes if ax.patches and not ax.images]
    assert len(bars[0].patches) == 8
    np.testing.assert_allclose([p.get_height() for p in bars[0].patches], 100 * r.frame_importance)


def test_vidtr_explain_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("cv2")
    from vidtr_keras.cli import main
    from vidtr_keras.data.synthetic import write_synthetic_video

    video = tmp_path / "clip.avi"
    write_synthetic_video(str(video), 20, height=36, width=44)
    out = tmp_path / "explain.png"
    assert main(["explain", str(video), "--model", "vidtr_tiny", "--output", str(out), "--rate", "2"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["explain", str(tmp_path / "missing.avi"), "--model", "vidtr_tiny", "--output", str(out)]) == 2
