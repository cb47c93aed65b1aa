"""The residual-gradient fence (`vidtr_keras.backends.xla_cpu.gradient_fence`): an identity in the forward
pass whose gradient is the upstream gradient exactly, and which stops XLA:CPU from recomputing the
residual stream's gradient inside every consumer (work growing with depth squared). Where it runs is a
policy: `VidTrEncoderBlock(gradient_fence=...)`, else `vidtr_keras.config`'s switch, else training on
JAX on the CPU."""

import re

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import vidtr_keras
from vidtr_keras import config
from vidtr_keras.backends import xla_cpu
from vidtr_keras.layers import VidTrEncoderBlock

from helpers import BACKEND, to_numpy


@pytest.fixture
def fence_switch():
    """The global switch, restored to the automatic choice after the test."""
    yield config
    config.reset_gradient_fence()


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
    y, g = _value_and_grad(xla_cpu.gradient_fence, x, upstream)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(g, upstream)


def test_by_default_the_fence_applies_only_when_training_with_jax_on_cpu():
    block = VidTrEncoderBlock(2, 16)
    on_jax_cpu = BACKEND == "jax" and all(d.startswith("cpu") for d in keras.distribution.list_devices())
    assert config.is_gradient_fence_enabled() is None  # automatic
    assert block.uses_gradient_fence(training=True) is on_jax_cpu
    for training in (False, None):
        assert not block.uses_gradient_fence(training=training)


def test_the_argument_beats_the_switch_which_beats_the_default(fence_switch):
    follows, on, off = (
        VidTrEncoderBlock(2, 16),
        VidTrEncoderBlock(2, 16, gradient_fence=True),
        VidTrEncoderBlock(2, 16, gradient_fence=False),
    )
    for switch, want in ((fence_switch.enable_gradient_fence, True), (fence_switch.disable_gradient_fence, False)):
        switch()
        assert follows.uses_gradient_fence(training=True) is want
        assert on.uses_gradient_fence(training=True) and not off.uses_gradient_fence(training=True)
        assert not on.uses_gradient_fence(training=False)  # inference never fences
    assert on.get_config()["gradient_fence"] is True and follows.get_config()["gradient_fence"] is None
    assert VidTrEncoderBlock.from_config(off.get_config()).gradient_fence is False


def test_a_fenced_block_gives_the_same_outputs_and_gradients():
    # On every backend: the fence changes how XLA schedules the gradient, never what it is.
    rng = np.random.default_rng(0)
    x, upstream = (rng.standard_normal((2, 3, 5, 16)).astype("float32") for _ in range(2))
    results = {}
    for fence in (True, False):
        keras.utils.set_random_seed(0)  # the same initial weights
        block = VidTrEncoderBlock(2, 32, dropout=0.0, attention_dropout=0.0, gradient_fence=fence)
        results[fence] = _value_and_grad(lambda t, b=block: b(t, training=True), x, upstream)
    for a, b in zip(results[True], results[False]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_training_blocks_pass_their_residual_stream_through_the_fence(monkeypatch, fence_switch):
    # Twice per block (its input and the MLP's input) in training; never in inference. The public
    # fence is watched (not replaced in behaviour): the global switch turns it on for every backend.
    calls = []
    fence = xla_cpu.gradient_fence
    monkeypatch.setattr(xla_cpu, "gradient_fence", lambda x: calls.append(x) or fence(x))
    fence_switch.enable_gradient_fence()
    model = vidtr_keras.build_model("vidtr_tiny", num_classes=3, num_layers=2)
    x = np.zeros((1, 4, 32, 32, 3), "float32")
    calls.clear()
    model(x, training=False)
    assert calls == []
    model(x, training=True)
    assert len(calls) == 4
    calls.clear()
    fence_switch.disable_gradient_fence()
    model(x, training=True)
    assert calls == []


def _compiled_training_gradient(depth, fence):
    """The compiled gradient of a tiny VidTr's loss (XLA's optimised HLO text and the gradients)."""
    import jax

    (config.enable_gradient_fence if fence else config.disable_gradient_fence)()
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


def test_fence_keeps_the_training_step_fusions_independent_of_depth(fence_switch):
    if BACKEND != "jax":
        pytest.skip("the fence works around XLA:CPU's fusion, applied on the JAX backend only")
    if not all(d.startswith("cpu") for d in keras.distribution.list_devices()):
        pytest.skip("the fence is applied on CPU only")
    with_fence = {d: _compiled_training_gradient(d, True) for d in (2, 4)}
    without = _compiled_training_gradient(4, False)
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
