"""Encoder blocks and whole models against the oracle; presets, parameter counts, functional use, training."""

import json

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidtr_keras import VidTrBackbone, build_model, get_preset, preset_names
from vidtr_keras.convert import gluonmm
from vidtr_keras.layers import VidTrEncoderBlock
from vidtr_keras.models.presets import official_presets

import oracle
from helpers import BACKEND, GLUONMM, run_compiled, to_numpy
from strategies import block_params, heads_and_width, official_state_dict, seeds, set_block_weights


@given(
    hw=heads_and_width,
    t=st.integers(2, 5),
    s=st.integers(1, 4),
    drop=st.integers(0, 3),
    with_cls=st.booleans(),
    with_pos=st.booleans(),
    pooling=st.sampled_from(["std_topk", "average"]),
    activation=st.sampled_from(["relu", "gelu"]),
    seed=seeds,
)
def test_separable_block_matches_oracle(hw, t, s, drop, with_cls, with_pos, pooling, activation, seed):
    heads, d = hw
    drop = min(drop, t - 1)
    rng = np.random.default_rng(seed)
    p = block_params(rng, d, 2 * d)
    x = rng.normal(size=(2, t, s, d)).astype("float32")
    cls = rng.normal(size=(2, 1, d)).astype("float32") if with_cls else None
    pos = None
    if with_pos:
        pos = rng.normal(size=(1, 1 + t * s, d) if with_cls else (1, t, s, d)).astype("float32")
    block = VidTrEncoderBlock(
        heads,
        2 * d,
        "temporal_spatial",
        frames_dropped=drop,
        pooling=pooling,
        mlp_activation=activation,
        dropout=0.0,
        attention_dropout=0.0,
    )
    block.build(x.shape)
    set_block_weights(block, p)
    got = run_compiled(lambda x, pos, cls: block(x, position_embedding=pos, class_token=cls), x, pos, cls)
    want = oracle.encoder_block(
        x.astype("float64"), p, heads, "temporal_spatial", pos, cls, drop, activation=activation, pooling=pooling
    )
    if with_cls:
        np.testing.assert_allclose(to_numpy(got[0]), want[0], atol=5e-4, rtol=1e-4)
        np.testing.assert_allclose(to_numpy(got[1]), want[1], atol=5e-4, rtol=1e-4)
    else:
        np.testing.assert_allclose(to_numpy(got), want, atol=5e-4, rtol=1e-4)


@given(hw=heads_and_width, n=st.integers(1, 9), target=st.sampled_from(["qk", "qkv"]), seed=seeds)
def test_joint_block_matches_oracle(hw, n, target, seed):
    heads, d = hw
    rng = np.random.default_rng(seed)
    p = block_params(rng, d, 3 * d)
    x = rng.normal(size=(2, n, d)).astype("float32")
    pos = rng.normal(size=(1, n, d)).astype("float32")
    block = VidTrEncoderBlock(
        heads, 3 * d, "joint", position_embedding_target=target, dropout=0.0, attention_dropout=0.0
    )
    block.build(x.shape)
    set_block_weights(block, p)
    want = oracle.encoder_block(x.astype("float64"), p, heads, "joint", pos, pos_target=target)
    got = run_compiled(lambda x, pos: block(x, position_embedding=pos), x, pos)
    np.testing.assert_allclose(to_numpy(got), want, atol=5e-4, rtol=1e-4)


@st.composite
def official_configs(draw):
    """Random tiny official constructor configs of the three official model kinds."""
    kind = draw(st.sampled_from(["split", "vanilla", "compact"]))
    heads, d = draw(heads_and_width)
    frames = draw(st.integers(2, 6))
    layers = draw(st.integers(1, 4))
    cfg = {
        "d_model": d,
        "nhead": heads,
        "num_encoder_layers": layers,
        "dim_feedforward": 2 * d,
        "patch_size": [1, 4, 4],
        "activity_num": draw(st.integers(1, 5)),
        "temporal_size": frames,
        "normalize_before": True,
    }
    if kind == "split":
        cfg.update({"cls": "VidTr", "merge_later": False})
    elif kind == "vanilla":
        cfg.update({"cls": "VidTr", "merge_later": True, "merge_index": -1})
    else:
        n_pools = draw(st.integers(1, min(layers, frames - 1)))
        pools = sorted(draw(st.lists(st.integers(0, layers - 1), min_size=n_pools, max_size=n_pools, unique=True)))
        budget, drops = frames - 1, []
        for _ in pools:
            k = draw(st.integers(1, max(1, budget - (n_pools - len(drops) - 1))))
            drops.append(k)
            budget -= k
        cfg.update({"cls": "CompactVidTr", "layer_pool": pools, "number_of_keys": drops})
    grid = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return cfg, grid


@given(cg=official_configs(), seed=seeds)
def test_converted_models_match_the_oracle(cg, seed):
    config, grid = cg
    rng = np.random.default_rng(seed)
    sd = official_state_dict(rng, config, grid)
    size = (grid[0] * 4, grid[1] * 4)
    model = gluonmm.from_state_dict(sd, config, image_size=size)
    clip = rng.normal(size=(2, 3, config["temporal_size"], size[0], size[1])).astype("float32")
    got = to_numpy(run_compiled(lambda x: model(x, training=False), np.transpose(clip, (0, 2, 3, 4, 1))))
    np.testing.assert_allclose(got, oracle.official_forward(sd, config, clip), atol=1e-3, rtol=1e-3)


def test_parameter_counts_equal_the_official_models():
    manifest = json.loads((GLUONMM / "manifest.json").read_text())
    presets = official_presets()  # official name -> preset, from the presets' `official_name`
    assert sorted(presets) == sorted(manifest)
    for official, preset in presets.items():
        # Only shapes are compared: in a StatelessScope Keras defers the variables' initializers, and
        # `initialize_variables=False` keeps it from running them on leaving the scope, so the full-size
        # models are built without drawing their ~90M random initial values each (clear_session below
        # drops the uninitialised variables).
        with keras.StatelessScope(initialize_variables=False):
            model = build_model(preset, num_classes=400)
        entry = manifest[official]
        assert model.count_params() == entry["num_parameters"] == get_preset(preset)["official_parameters"]
        # every official tensor has a place of the right shape
        rows = {name: tuple(var.shape) for name, var, _, to_official in gluonmm.weight_map(model)}
        assert set(rows) == set(entry["state_dict_shapes"])
        for name, var, _, to_official in gluonmm.weight_map(model):
            assert to_official(np.zeros(var.shape, "float32")).shape == tuple(entry["state_dict_shapes"][name]), name
        del model
        keras.backend.clear_session()


@pytest.mark.parametrize("preset", ["vanilla_tiny", "vidtr_tiny", "cvidtr_tiny"])
def test_tiny_presets_run_on_other_frame_counts_and_resolutions(preset):
    model = build_model(preset)
    frames = model.backbone.num_frames
    # One compiled call per input shape on JAX (an eager call compiles each op of the model anew).
    base = run_compiled(model, np.ones((1, frames, 32, 32, 3), "float32"))
    assert base.shape == (1, 10)
    longer = to_numpy(run_compiled(model, np.ones((2, 2 * frames, 48, 40, 3), "float32")))
    assert longer.shape == (2, 10) and np.isfinite(longer).all()


def test_resized_model_equals_the_model_made_for_that_size_with_resized_parameters():
    """Running an 8-frame model on 16 frames is the same as a 16-frame model whose position embedding
    and class tokens were resized once."""
    small = build_model("vidtr_tiny", dropout=0.0, attention_dropout=0.0, head_dropout=0.0)
    big = build_model("vidtr_tiny", num_frames=8, image_size=48, dropout=0.0, attention_dropout=0.0, head_dropout=0.0)
    patches = np.zeros((1, 8, 6, 6, 32), "float32")
    for layer in big.backbone.layers:
        src = small.backbone.get_layer(layer.name)
        if layer.name == "position_embedding":
            layer.embeddings.assign(
                src(patches)[:, :, :].reshape(layer.embeddings.shape)
                if False
                else keras.ops.reshape(src(patches), layer.embeddings.shape)
            )
        elif layer.name == "class_tokens":
            grid = to_numpy(src(patches))[0]
            layer.temporal_class_tokens.assign(grid[:1])
            layer.spatial_class_tokens.assign(grid[1:, :1])
        else:
            for w_big, w_small in zip(layer.weights, src.weights):
                w_big.assign(w_small)
    big.get_layer("head").set_weights(small.get_layer("head").get_weights())
    clip = np.random.default_rng(0).normal(size=(1, 8, 48, 48, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(run_compiled(small, clip)), to_numpy(run_compiled(big, clip)), atol=1e-5)


def test_backbone_in_the_functional_api():
    backbone = VidTrBackbone(**get_preset("cvidtr_tiny")["config"])
    clips = keras.Input((8, 32, 32, 3))
    features = backbone(clips)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.LayerNormalization()(features))
    model = keras.Model(clips, outputs)
    assert tuple(outputs.shape) == (None, 3)
    probs = to_numpy(run_compiled(model, np.zeros((2, 8, 32, 32, 3), "float32")))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("preset", ["vanilla_tiny", "vidtr_tiny", "cvidtr_tiny"])
def test_training_steps_reduce_the_loss(preset):
    model = build_model(preset, num_classes=3, dropout=0.0, attention_dropout=0.0, head_dropout=0.0)
    frames = model.backbone.num_frames
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, frames, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 1])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        # JAX: the jitted step `fit` takes by default, compiled once (eagerly, every op of the forward and
        # backward pass compiles anew: 2-4x slower here); TensorFlow and PyTorch: the eager step, which
        # compiles nothing.
        jit_compile=BACKEND == "jax",
    )
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    losses = [float(model.train_on_batch(x, y)) for _ in range(5)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    # every parameter (class tokens, position embedding, every block) received a gradient
    unchanged = [w.path for w, b in zip(model.trainable_weights, before) if np.array_equal(to_numpy(w), b)]
    assert not unchanged


def test_every_preset_config_builds_a_valid_backbone_config():
    for name in preset_names():
        entry = get_preset(name)
        assert entry["description"] and entry["num_classes"] > 0
        if name.endswith("tiny"):
            model = build_model(name)
            assert model.backbone.frames_after_each_layer()[-1] >= 1


@pytest.mark.parametrize("attention", ["spatial_temporal", "spatial", "temporal"])
def test_ablation_attention_orders_build_and_run(attention):
    model = build_model("vidtr_tiny", attention=attention)
    out = to_numpy(run_compiled(model, np.ones((1, 4, 32, 32, 3), "float32")))
    assert out.shape == (1, 10) and np.isfinite(out).all()


def test_ablation_pooling_kinds_build_and_run():
    for pooling in ("average", "conv"):
        model = build_model("cvidtr_tiny", pooling=pooling, frames_dropped=(4, 2))
        assert model.backbone.frames_after_each_layer() == [4, 2, 2]
        out = to_numpy(run_compiled(model, np.ones((1, 8, 32, 32, 3), "float32")))
        assert out.shape == (1, 10) and np.isfinite(out).all()
