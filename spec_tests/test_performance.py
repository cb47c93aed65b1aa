"""Lean training: rematerialisation gives the same outputs and gradients, mixed precision stays close
to float32, and the memory model's fit prediction. Ratios and equalities only: no wall-clock checks."""

import os
import weakref

import keras
import numpy as np
import pytest

from vidtr_keras.complexity.memory import fits_in_memory, memory
from vidtr_keras.layers.encoder import VidTrEncoderBlock
from vidtr_keras.models import VidTrBackbone, build_model

from helpers import BACKEND, to_numpy

GIB = 2**30


def _loss(y, logits):
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))


# One jitted step per model (JAX): the state, clip and labels are arguments, so calling it again (the
# second and third steps below) reuses the compiled step instead of compiling the same one anew.
_JAX_STEPS = weakref.WeakKeyDictionary()


def _jax_step(model):
    if model not in _JAX_STEPS:
        import jax

        def step(tv, ntv, x, y):
            def f(tv):
                logits, new_ntv = model.stateless_call(tv, ntv, x, training=True)
                return _loss(y, logits), (logits, new_ntv)

            return jax.value_and_grad(f, has_aux=True)(tv)

        _JAX_STEPS[model] = jax.jit(step)
    return _JAX_STEPS[model]


def _loss_and_grads(model, x, y):
    """Training-mode logits and d loss / d trainable variables on the current backend (test-side
    backend code), with the non-trainable state (dropout seeds) after the step."""

    def loss_fn(logits):
        return _loss(y, logits)

    if BACKEND == "jax":
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        (_, (logits, new_ntv)), grads = _jax_step(model)(tv, ntv, x, y)
        return to_numpy(logits), [to_numpy(g) for g in grads], [to_numpy(v) for v in new_ntv]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(logits)
        grads = tape.gradient(loss, model.trainable_variables)
    else:
        logits = model(x, training=True)
        loss_fn(logits).backward()
        grads = [v.value.grad for v in model.trainable_variables]
    return to_numpy(logits), [to_numpy(g) for g in grads], [to_numpy(v) for v in model.non_trainable_variables]


def _pair(preset, **kwargs):
    """The same model built without and with remat, sharing weights and dropout seeds."""
    keras.utils.set_random_seed(7)
    plain = build_model(preset, remat=False, **kwargs)
    keras.utils.set_random_seed(7)
    remat = build_model(preset, remat=True, **kwargs)
    frames = plain.backbone.num_frames if hasattr(plain, "backbone") else 4
    x = np.random.default_rng(0).standard_normal((2, frames, 32, 32, 3)).astype("float32")
    plain(x)
    remat(x)
    remat.set_weights(plain.get_weights())
    return plain, remat, x


_SLOW_ON_JAX = pytest.mark.skipif(
    BACKEND == "jax", reason="compiling the pooled model's step twice takes minutes on XLA:CPU; TF and torch cover it"
)


@pytest.mark.parametrize("preset", ["vidtr_tiny", pytest.param("cvidtr_tiny", marks=_SLOW_ON_JAX), "vanilla_tiny"])
def test_remat_gives_the_same_outputs_and_gradients_with_dropout_on(preset):
    plain, remat, x = _pair(preset, dropout=0.2, attention_dropout=0.2)
    y = np.array([1, 3], dtype="int32")
    # Same global RNG state for both steps: PyTorch's unseeded Dropout draws from torch's global
    # generator (torch.utils.checkpoint restores it for the recomputation).
    keras.utils.set_random_seed(11)
    out_a, grads_a, state_a = _loss_and_grads(plain, x, y)
    keras.utils.set_random_seed(11)
    out_b, grads_b, state_b = _loss_and_grads(remat, x, y)
    np.testing.assert_allclose(out_b, out_a, rtol=1e-5, atol=1e-5)
    assert len(grads_a) == len(grads_b)
    for ga, gb, v in zip(grads_a, grads_b, plain.trainable_variables):
        scale = max(1.0, float(np.abs(ga).max()))
        np.testing.assert_allclose(gb, ga, rtol=1e-4, atol=1e-5 * scale, err_msg=v.path)
    # The dropout seeds advance as without remat (the recomputation draws the same masks).
    for sa, sb in zip(state_a, state_b):
        np.testing.assert_array_equal(sb, sa)


def test_remat_training_really_uses_dropout():
    """The equality above would be vacuous if dropout were off: two steps give different logits."""
    _, remat, x = _pair("vidtr_tiny", dropout=0.2, attention_dropout=0.2)
    y = np.array([1, 3], dtype="int32")
    first = _loss_and_grads(remat, x, y)[0]
    if BACKEND == "jax":  # stateless: feed the advanced seeds back
        for v, value in zip(remat.non_trainable_variables, _loss_and_grads(remat, x, y)[2]):
            v.assign(value)
    second = _loss_and_grads(remat, x, y)[0]
    assert np.abs(first - second).max() > 1e-4


def test_remat_inference_is_unchanged_and_the_option_serialises():
    plain, remat, x = _pair("vidtr_tiny")
    np.testing.assert_allclose(to_numpy(remat(x, training=False)), to_numpy(plain(x, training=False)), atol=1e-6)
    config = remat.backbone.get_config()
    assert config["remat"] is True
    rebuilt = VidTrBackbone.from_config(config)
    blocks = [layer for layer in rebuilt.layers if isinstance(layer, VidTrEncoderBlock)]
    assert blocks and all(block.remat for block in blocks)
    assert VidTrEncoderBlock.from_config(blocks[0].get_config()).remat


def test_mixed_bfloat16_is_close_to_float32():
    keras.utils.set_random_seed(3)
    reference = build_model("vidtr_tiny")
    x = np.random.default_rng(1).standard_normal((2, 4, 32, 32, 3)).astype("float32")
    expected = to_numpy(reference(x, training=False))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = build_model("vidtr_tiny")
        mixed(x)
    finally:
        keras.config.set_dtype_policy(previous)
    mixed.set_weights(reference.get_weights())
    assert all(v.dtype == "float32" for v in mixed.trainable_variables)  # variables stay float32
    got = to_numpy(mixed(x, training=False)).astype("float32")
    assert got.shape == expected.shape
    # bfloat16 keeps 8 mantissa bits: agreement to a few percent of the logits' scale, not exact.
    scale = float(np.abs(expected).max())
    assert np.abs(got - expected).max() <= 0.05 * scale + 0.02
    assert np.abs(got - expected).max() > 0  # really computed in lower precision


def test_memory_model_remat_keeps_at_least_2x_less_activation_memory():
    for preset, frames in (("vidtr_s", 8), ("vidtr_s", 64), ("vanilla_s", 8), ("cvidtr_s", 8)):
        plain = memory(preset, frames=frames, optimizer_slots=1)
        lean = memory(preset, frames=frames, optimizer_slots=1, remat=True)
        assert lean.remat and not plain.remat
        assert plain.activation_bytes >= 2 * lean.activation_bytes, (preset, frames)
        assert lean.state_bytes == plain.state_bytes
    components = memory("vidtr_s", remat=True).by_component()
    assert set(components) == {"embedding", "block_input", "recomputed_block", "head"}


def test_fit_prediction_explicit_cases():
    # VidTr-S, 64 frames: about 13 GiB of activations (analytic), about 2.5 GiB with remat.
    plain = fits_in_memory("vidtr_s", 8 * GIB, frames=64)
    lean = fits_in_memory("vidtr_s", 8 * GIB, frames=64, remat=True)
    assert not plain.fits and lean.fits
    assert plain.required_bytes > 8 * GIB >= lean.required_bytes
    # Memory grows with frames and batch; mixed precision halves the activations, not the state.
    small = fits_in_memory("vidtr_s", 64 * GIB, frames=8)
    assert small.required_bytes < fits_in_memory("vidtr_s", 64 * GIB, frames=16).required_bytes
    assert small.required_bytes < fits_in_memory("vidtr_s", 64 * GIB, frames=8, batch_size=2).required_bytes
    half = fits_in_memory("vidtr_s", 64 * GIB, frames=8, mixed_precision=True)
    assert half.activation_bytes == memory("vidtr_s", frames=8, dtype_bytes=2).activation_bytes
    assert 1.8 * half.activation_bytes < small.activation_bytes  # floats halve; dropout masks are bytes
    assert half.state_bytes == small.state_bytes
    # The pieces add up.
    assert small.required_bytes == int(small.runtime_bytes + small.state_bytes + small.activation_bytes * 1.15)


def test_fit_prediction_rejects_bad_budgets():
    with pytest.raises(ValueError, match="available_bytes"):
        fits_in_memory("vidtr_tiny", 0)
    with pytest.raises(ValueError, match="margin"):
        fits_in_memory("vidtr_tiny", GIB, margin=-0.1)


def test_xla_activation_memory_is_at_least_2x_lower_with_remat():
    """What XLA really allocates for the backward pass (its buffer assignment), remat vs not.

    XLA:CPU keeps remat apart only with its barrier-removing pass disabled, which importing
    vidtr_keras arranges (`vidtr_keras.backends.xla_cpu`); without it both sizes were equal."""
    if BACKEND != "jax":
        pytest.skip("XLA's memory analysis of a compiled step is available on JAX only")
    import jax

    from vidtr_keras.backends import xla_cpu

    assert xla_cpu.remat_kept(), os.environ.get("XLA_FLAGS")
    sizes = {}
    for remat in (False, True):
        keras.utils.set_random_seed(0)
        model = build_model("vidtr_tiny", remat=remat, num_layers=6, hidden_dim=64, mlp_dim=128)
        x = np.zeros((1, 8, 64, 64, 3), "float32")
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]

        def loss(tv, x, model=model, ntv=ntv):
            return keras.ops.sum(model.stateless_call(tv, ntv, x, training=True)[0])

        compiled = jax.jit(jax.grad(loss)).lower(tv, x).compile()
        sizes[remat] = compiled.memory_analysis().temp_size_in_bytes
    assert sizes[False] >= 2 * sizes[True], sizes


def test_benchmark_reports_flops_and_peak_consistently():
    from vidtr_keras.complexity.benchmark import benchmark
    from vidtr_keras.complexity.flops import flops

    result = benchmark("vidtr_tiny", mode="inference", image_size=32, runs=2, warmup=1)
    assert result["backend"] == BACKEND and result["frames"] == 4 and len(result["runs_s"]) == 2
    assert result["gflop"] == pytest.approx(flops("vidtr_tiny", image_size=32, convention="full").flops / 1e9)
    assert result["gflops"] == pytest.approx(result["gflop"] / result["seconds"])
    assert result["percent_of_peak"] == pytest.approx(100 * result["gflops"] / result["peak_gflops"])
    assert result["peak_gflops"] == max(result["peak_gflops_before_after"]) > 0
    assert result["peak_rss"] > 0 and result["baseline_rss"] > 0
    assert len(result["loadavg"]) == 3
    with pytest.raises(ValueError, match="mode"):
        benchmark("vidtr_tiny", mode="fit")
