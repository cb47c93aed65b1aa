"""Stochastic depth (`DropPath`, `VidTrEncoderBlock(drop_path=...)`, `BackboneConfig.drop_path_rate`):
0 is the paper's model exactly, a positive rate is the identity at inference, drops whole branches per
sample in training with the expectation kept, rises linearly over the blocks, survives serialisation and
trains the C-VidTr variants (separable + std-topK + class token, joint layers after pooling)."""

import math

import keras
import numpy as np
import pytest

from vidtr_keras.layers import DropPath, VidTrEncoderBlock
from vidtr_keras.models import BackboneConfig, VidTrBackbone, build_model, get_preset

from helpers import BACKEND, to_numpy

CLIP_RNG = np.random.default_rng(0)


def _clips(frames, batch=3):
    return CLIP_RNG.normal(size=(batch, frames, 32, 32, 3)).astype("float32")


def _outputs_and_grads(layer, x, **kwargs):
    """Training-mode outputs of `layer(x, **kwargs)` (a model or a block) and the gradients of the
    sum of their squares with respect to the trainable variables (test-side backend code). The
    global RNGs are reset first: PyTorch's unseeded dropout draws from them."""
    keras.utils.set_random_seed(11)

    def sum_of_squares(outputs):
        return sum(keras.ops.sum(y * y) for y in keras.tree.flatten(outputs))

    if BACKEND == "jax":
        import jax

        tv = [v.value for v in layer.trainable_variables]
        ntv = [v.value for v in layer.non_trainable_variables]

        def loss(tv):
            outputs, _ = layer.stateless_call(tv, ntv, x, training=True, **kwargs)
            return sum_of_squares(outputs), outputs

        # one compiled step: eager JAX would compile every operation of the block on its own
        (_, outputs), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(tv)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            outputs = layer(x, training=True, **kwargs)
            loss = sum_of_squares(outputs)
        grads = tape.gradient(loss, layer.trainable_variables)
    else:
        outputs = layer(x, training=True, **kwargs)
        sum_of_squares(outputs).backward()
        grads = [v.value.grad for v in layer.trainable_variables]
    return [to_numpy(y) for y in keras.tree.flatten(outputs)], [to_numpy(g) for g in grads]


def _call(model, x, training):
    """`model(x, training=training)` as numpy; on JAX as one compiled call (eager JAX would compile every
    operation of the model on its own), its random state advanced as the eager call would."""
    if BACKEND != "jax":
        return to_numpy(model(x, training=training))
    import jax

    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    y, ntv = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=training))(tv, ntv, x)
    for variable, value in zip(model.non_trainable_variables, ntv, strict=True):
        variable.assign(value)
    return to_numpy(y)


def _drop_path_layers(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, DropPath)]


# === The paper's model at rate 0 ===


def test_rate_zero_is_the_model_without_the_option_bit_for_bit():
    # C-VidTr: separable layers with the bypassing class token, std-topK pooling, a joint layer
    config = {**get_preset("cvidtr_tiny")["config"], "dropout": 0.2, "attention_dropout": 0.1}
    keras.utils.set_random_seed(3)
    plain = VidTrBackbone(**config)
    keras.utils.set_random_seed(3)
    zero = VidTrBackbone(**config, drop_path_rate=0.0)
    # no extra layer, weight or random state
    assert not _drop_path_layers(zero)
    assert len(zero.weights) == len(plain.weights) and len(zero.variables) == len(plain.variables)
    for a, b in zip(plain.variables, zero.variables):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    x = _clips(config["num_frames"])
    y_plain, g_plain = _outputs_and_grads(plain, x)
    y_zero, g_zero = _outputs_and_grads(zero, x)
    for a, b in zip(y_plain + g_plain, y_zero + g_zero):
        np.testing.assert_array_equal(a, b)


def test_positive_rate_is_the_identity_at_inference_and_changes_training_outputs():
    config = {**get_preset("cvidtr_tiny")["config"], "dropout": 0.0, "attention_dropout": 0.0}
    plain = VidTrBackbone(**config)
    dropping = VidTrBackbone(**config, drop_path_rate=0.5)
    assert len(dropping.weights) == len(plain.weights)
    dropping.set_weights(plain.get_weights())
    x = _clips(config["num_frames"], batch=4)
    reference = _call(plain, x, training=False)
    np.testing.assert_array_equal(_call(dropping, x, training=False), reference)
    # without dropout the plain model is deterministic in training too; drop path is not
    np.testing.assert_array_equal(_call(plain, x, training=True), reference)
    y = _call(dropping, x, training=True)
    assert np.all(np.isfinite(y))
    assert not np.allclose(y, reference)


# === The DropPath layer ===


def test_drop_path_zeroes_whole_samples_and_scales_the_kept_ones():
    layer = DropPath(0.5, seed=1)
    x = np.full((64, 3, 5, 4), 1.5, "float32")  # a constant branch
    y = to_numpy(layer(x, training=True))
    per_sample = y.reshape(64, -1)
    dropped = np.all(per_sample == 0.0, axis=1)
    kept = np.all(per_sample == 3.0, axis=1)  # 1.5 * 1 / (1 - 0.5), exactly
    assert np.all(dropped | kept), "every sample is either dropped whole or kept whole"
    assert dropped.any() and kept.any()
    # the next call draws anew
    again = to_numpy(layer(x, training=True)).reshape(64, -1)
    assert not np.array_equal(again, per_sample)
    # the identity outside training
    for training in (False, None):
        np.testing.assert_array_equal(to_numpy(layer(x, training=training)), x)


def test_drop_path_keeps_the_expectation():
    rate, batch, draws = 0.3, 200, 25
    layer = DropPath(rate, seed=2)
    x = np.linspace(-1.0, 2.0, batch * 6, dtype="float32").reshape(batch, 2, 3)
    total = sum(to_numpy(layer(x, training=True)) for _ in range(draws))
    mean_scale = (total / draws / x).mean()
    # one scale per sample: 0 or 1/(1-p), mean 1 and std sqrt(p/(1-p)) over batch * draws samples
    sigma = math.sqrt(rate / (1 - rate)) / math.sqrt(batch * draws)
    assert abs(mean_scale - 1.0) < 5 * sigma


def test_drop_path_config_round_trip_and_shape():
    layer = DropPath(0.25, seed=4, name="dp")
    clone = DropPath.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.rate == 0.25 and clone.seed == 4
    assert layer.compute_output_shape((None, 3, 7)) == (None, 3, 7)
    assert DropPath(0.0).seed_generator is None  # rate 0 draws nothing


# === In the encoder block ===


def test_block_drops_the_class_token_and_the_patch_tokens_of_a_sample_together():
    """C-VidTr's class token bypasses the separable attention but is part of the same residual
    branches: one draw per sample for both."""
    keras.utils.set_random_seed(5)
    block = VidTrEncoderBlock(2, 16, dropout=0.0, attention_dropout=0.0, drop_path=0.5)
    rng = np.random.default_rng(1)
    tokens = rng.normal(size=(32, 3, 4, 8)).astype("float32")
    cls = rng.normal(size=(32, 1, 8)).astype("float32")
    out_tokens, out_cls = (to_numpy(t) for t in block(tokens, class_token=cls, training=True))
    tokens_unchanged = np.all(out_tokens == tokens, axis=(1, 2, 3))
    cls_unchanged = np.all(out_cls == cls, axis=(1, 2))
    np.testing.assert_array_equal(tokens_unchanged, cls_unchanged)
    assert tokens_unchanged.any() and not tokens_unchanged.all()


def test_block_config_round_trip_keeps_drop_path():
    block = VidTrEncoderBlock(2, 16, drop_path=0.125)
    clone = VidTrEncoderBlock.from_config(block.get_config())
    assert clone.drop_path == 0.125 and clone.attn_drop_path.rate == 0.125
    assert VidTrEncoderBlock(2, 16).attn_drop_path is None


# === In the backbone ===


def test_block_rates_rise_linearly_from_zero_to_the_rate():
    config = BackboneConfig(num_layers=5, hidden_dim=32, num_heads=4, mlp_dim=64, image_size=32, drop_path_rate=0.2)
    rates = config.drop_path_rates()
    np.testing.assert_allclose(rates, np.linspace(0.0, 0.2, 5), rtol=0, atol=1e-12)  # timm's torch.linspace rule
    assert rates[0] == 0.0 and rates[-1] == 0.2
    assert BackboneConfig(num_layers=1, image_size=32, drop_path_rate=0.3).drop_path_rates() == [0.0]
    assert BackboneConfig(image_size=32).drop_path_rates() == [0.0] * 12
    backbone = VidTrBackbone(**{**get_preset("cvidtr_tiny")["config"], "num_layers": 5, "drop_path_rate": 0.2})
    blocks = [layer for layer in backbone.layers if isinstance(layer, VidTrEncoderBlock)]
    assert [b.drop_path for b in blocks] == rates
    assert blocks[0].attn_drop_path is None  # rate 0: no layer at all
    assert [b.attn_drop_path.rate for b in blocks[1:]] == rates[1:]


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), "0.1", True, None])
def test_a_bad_rate_is_a_clear_error(rate):
    with pytest.raises(ValueError, match="drop_path_rate"):
        BackboneConfig(drop_path_rate=rate)
    with pytest.raises(ValueError, match="drop_path_rate"):
        build_model("vidtr_tiny", drop_path_rate=rate)
    with pytest.raises(ValueError, match="drop_path"):
        VidTrEncoderBlock(2, 16, drop_path=rate)
    with pytest.raises(ValueError, match="rate"):
        DropPath(rate)


def test_rate_survives_config_and_keras_file_round_trips(tmp_path):
    model = build_model("cvidtr_tiny", drop_path_rate=0.3)
    assert model.backbone.get_config()["drop_path_rate"] == 0.3
    assert model.backbone.backbone_config.drop_path_rate == 0.3
    clone = VidTrBackbone.from_config(model.backbone.get_config())
    assert clone.drop_path_rate == 0.3
    x = _clips(8, batch=2)
    want = _call(model, x, training=False)
    path = tmp_path / "dropping.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.backbone.drop_path_rate == 0.3
    assert [b.drop_path for b in loaded.backbone.layers if isinstance(b, VidTrEncoderBlock)] == [0.0, 0.15, 0.3]
    np.testing.assert_allclose(_call(loaded, x, training=False), want, atol=1e-6)
    # the weights file is that of the model without drop path (seed states are not weights)
    weights = tmp_path / "dropping.weights.h5"
    model.save_weights(weights)
    plain = build_model("cvidtr_tiny")
    plain.load_weights(weights)
    np.testing.assert_allclose(_call(plain, x, training=False), want, atol=1e-6)


@pytest.mark.parametrize("frames_dropped", [0, 1])
def test_remat_recomputes_the_same_drop_path_masks(frames_dropped):
    """A C-VidTr block (separable attention, bypassing class token, std-topK pooling or none) with
    dropout and drop path: the rematerialised block recomputes the same masks in the backward pass."""
    rng = np.random.default_rng(2)
    tokens = rng.normal(size=(4, 4, 4, 8)).astype("float32")
    cls = rng.normal(size=(4, 1, 8)).astype("float32")
    results = []
    for remat in (False, True):
        keras.utils.set_random_seed(8)
        block = VidTrEncoderBlock(
            2, 16, frames_dropped=frames_dropped, dropout=0.3, attention_dropout=0.0, drop_path=0.5, remat=remat
        )
        block(tokens, class_token=cls)
        results.append(_outputs_and_grads(block, tokens, class_token=cls))
    (y_plain, g_plain), (y_remat, g_remat) = results
    for a, b in zip(y_plain, y_remat):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_plain, g_remat):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(a).max())))


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # separable, std-topK at layers 0 and 1 with the bypassing class token, joint layer 2
        {"pooling": "average"},  # pools the token grid after the residual add
    ],
    ids=["cvidtr_std_topk", "cvidtr_average"],
)
def test_models_with_drop_path_train_a_step(overrides):
    keras.utils.set_random_seed(9)
    model = build_model("cvidtr_tiny", num_classes=3, drop_path_rate=0.4, **overrides)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    before = [to_numpy(w) for w in model.trainable_weights]
    x, y = _clips(8, batch=8), np.array([0, 1, 2, 1, 0, 1, 2, 0])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # Every weight gets a gradient unless a branch is dropped for the whole batch (then that branch's
    # weights, and in C-VidTr everything before the one joint layer, rightly get none): 8 samples make
    # that unlikely, and the seed makes it reproducible.
    still = [w.path for a, w in zip(before, model.trainable_weights) if np.array_equal(a, to_numpy(w))]
    assert not still, f"weights without an update: {still}"
