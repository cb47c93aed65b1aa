"""The residual-gradient fence (`vidtr_keras.layers._utils.fence_residual_gradient`): an identity in
the forward pass whose gradient is the upstream gradient exactly, and which stops XLA:CPU from
recomputing the residual stream's gradient inside every consumer (work growing with depth squared)."""

import re

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import vidtr_keras
from vidtr_keras.layers import _utils

from helpers import BACKEND, to_numpy


def _value_and_grad(fn, x, upstream):
    """fn(x) and the vector-Jacobian product of `upstream` through it, on the current backend."""
    if BACKEND == "jax":
        import jax

        y, vjp = jax.vjp(fn, keras.ops.convert_to_tensor(x))
        return to_numpy(y), to_numpy(vjp(keras.ops.convert_to_tensor(upstream))[0])
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = fn(xt)
        return to_numpy(y), to_numpy(tape.gradient(y, xt, output_gradients=tf.constant(upstream)))
    import torch

    xt = torch.tensor(x, requires_grad=True)
    y = fn(xt)
    y.backward(torch.tensor(upstream))
    return to_numpy(y.detach()), to_numpy(xt.grad)


@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple),
    seed=st.integers(0, 2**16),
)
def test_fence_is_the_identity_with_the_exact_upstream_gradient(shape, seed):
    # Sizes divisible by the 8-channel group and sizes that are not (the identity then spans the
    # last axis), with values of every magnitude: the identity matmul must not round anything.
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)).astype("float32")
    upstream = (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)).astype("float32")
    y, g = _value_and_grad(_utils._gradient_fence, x, upstream)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(g, upstream)


def test_fence_applies_only_when_training_with_jax_on_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(_utils, "_gradient_fence", lambda x: calls.append(x) or x)
    x = keras.ops.ones((2, 3, 8))
    for training in (False, None):
        assert _utils.fence_residual_gradient(x, training=training) is x
    assert calls == []
    _utils.fence_residual_gradient(x, training=True)
    on_jax_cpu = BACKEND == "jax" and all(d.startswith("cpu") for d in keras.distribution.list_devices())
    assert len(calls) == (1 if on_jax_cpu else 0)


def test_training_blocks_pass_their_residual_stream_through_the_fence(monkeypatch):
    # Twice per block (its input and the MLP's input) in training; never in inference.
    from vidtr_keras.layers import encoder

    calls = []
    monkeypatch.setattr(encoder, "fence_residual_gradient", lambda x, training: calls.append(training) or x)
    model = vidtr_keras.build_model("vidtr_tiny", num_classes=3, num_layers=2)
    x = np.zeros((1, 4, 32, 32, 3), "float32")
    calls.clear()
    model(x, training=False)
    assert calls and not any(calls)
    calls.clear()
    model(x, training=True)
    assert calls == [True] * 4


def _compiled_training_gradient(depth, fence, monkeypatch):
    """The compiled gradient of a tiny VidTr's loss (XLA's optimised HLO text and the gradients)."""
    import jax

    monkeypatch.setattr(_utils, "GRADIENT_FENCE_ENABLED", fence)
    keras.utils.set_random_seed(0)
    model = vidtr_keras.build_model("vidtr_tiny", num_classes=3, num_layers=depth)
    x = np.random.default_rng(0).standard_normal((1, 4, 32, 32, 3)).astype("float32")
    y = np.array([1], "int32")

    def loss(tv, ntv):
        logits, _ = model.stateless_call(tv, ntv, x, training=True)
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    compiled = jax.jit(jax.grad(loss)).lower(tv, ntv).compile()
    return compiled.as_text(), [np.asarray(g) for g in compiled(tv, ntv)]


def _widest_fusion(hlo_text):
    """The largest number of parameters (inputs) of any fused computation in XLA's optimised HLO."""
    bodies = re.findall(r"fused_computation[^\n]*\{\n(.*?)\n\}", hlo_text, re.S)
    assert bodies, "no fused computations found in the HLO text"
    return max(len(re.findall(r"%param", body)) for body in bodies)


def test_fence_keeps_the_training_step_fusions_independent_of_depth(monkeypatch):
    if BACKEND != "jax":
        pytest.skip("the fence works around XLA:CPU's fusion, applied on the JAX backend only")
    if not all(d.startswith("cpu") for d in keras.distribution.list_devices()):
        pytest.skip("the fence is applied on CPU only")
    with_fence = {d: _compiled_training_gradient(d, True, monkeypatch) for d in (2, 4)}
    without = _compiled_training_gradient(4, False, monkeypatch)
    # The same gradients (the fence only changes how XLA schedules the elementwise work).
    for a, b in zip(with_fence[4][1], without[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # With the fence the widest fusion is the same at depth 2 and 4: each block's residual gradient is
    # computed once. Without it XLA fuses every later block's LayerNorm backward into each consumer, so
    # the widest fusion grows with depth (measured: 90 -> 164 -> 312 inputs at depth 2 -> 4 -> 8, 36
    # with the fence). If the second assertion fails, XLA no longer duplicates the chain and the fence
    # can go.
    assert _widest_fusion(with_fence[4][0]) == _widest_fusion(with_fence[2][0])
    assert _widest_fusion(without[0]) > 2 * _widest_fusion(with_fence[4][0])
