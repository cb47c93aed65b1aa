"""The linear projection of every VidTr layer (`vidtr_keras.layers.utils.linear` and `Linear`):

- it is `x @ kernel + bias` on every backend, and `Linear` is `keras.layers.Dense` with the same weights,
  paths, configuration, LoRA and mixed-precision behaviour;
- on PyTorch it runs as one fused `addmm` (`vidtr_keras.backends.torch_ops`), the official code's
  `nn.Linear`, with no separate pass for the bias (what made the official code's C-VidTr-S faster).
"""

import keras
import numpy as np
import pytest
from keras import ops

from vidtr_keras.layers.utils import Linear, linear

from helpers import BACKEND


def _data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.mark.parametrize("leading", [(5,), (2, 3, 7), (1, 2, 3, 4)])
def test_linear_is_the_product_plus_bias_over_the_last_axis(leading):
    x, kernel, bias = _data(leading + (6,), 0), _data((6, 4), 1), _data((4,), 2)
    out = ops.convert_to_numpy(linear(ops.convert_to_tensor(x), ops.convert_to_tensor(kernel), bias))
    assert out.shape == leading + (4,)
    np.testing.assert_allclose(out, x @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_linear_takes_keras_variables_and_their_column_slices():
    layer = keras.layers.Dense(9)
    layer.build((None, 6))
    layer.kernel.assign(_data((6, 9), 3))
    layer.bias.assign(_data((9,), 4))
    x = _data((3, 6), 5)
    kernel, bias = ops.convert_to_numpy(layer.kernel), ops.convert_to_numpy(layer.bias)
    out = ops.convert_to_numpy(linear(x, layer.kernel[:, 3:], layer.bias[3:]))
    np.testing.assert_allclose(out, x @ kernel[:, 3:] + bias[3:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation,use_bias", [(None, True), ("relu", True), ("gelu", True), ("relu", False)])
def test_linear_layer_is_dense_with_the_same_weights(activation, use_bias):
    dense = keras.layers.Dense(8, activation=activation, use_bias=use_bias, name="mlp")
    fused = Linear(8, activation=activation, use_bias=use_bias, name="mlp")
    x = _data((2, 3, 5), 6)
    dense.build(x.shape)
    fused.build(x.shape)
    assert [(w.path, w.shape) for w in fused.weights] == [(w.path, w.shape) for w in dense.weights]
    fused.set_weights(dense.get_weights())
    np.testing.assert_allclose(ops.convert_to_numpy(fused(x)), ops.convert_to_numpy(dense(x)), rtol=1e-5, atol=1e-6)
    config = fused.get_config()
    assert config == dense.get_config()
    assert isinstance(keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(fused)), Linear)


def test_linear_layer_keeps_lora_and_mixed_precision():
    dense, fused = keras.layers.Dense(8, name="a"), Linear(8, name="a")
    x = _data((4, 5), 7)
    for layer in (dense, fused):
        layer.build(x.shape)
    fused.set_weights(dense.get_weights())
    for layer in (dense, fused):
        layer.enable_lora(2)
    fused.lora_kernel_a.assign(_data((5, 2), 8))
    fused.lora_kernel_b.assign(_data((2, 8), 9))
    dense.lora_kernel_a.assign(fused.lora_kernel_a)
    dense.lora_kernel_b.assign(fused.lora_kernel_b)
    np.testing.assert_allclose(ops.convert_to_numpy(fused(x)), ops.convert_to_numpy(dense(x)), rtol=1e-5, atol=1e-5)

    half = Linear(8, dtype="mixed_bfloat16")
    out = half(x)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    kernel = ops.convert_to_numpy(ops.cast(half.kernel, "float32"))
    bias = ops.convert_to_numpy(ops.cast(half.bias, "float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(ops.cast(out, "float32")), x @ kernel + bias, rtol=0.05, atol=0.05)


def test_on_torch_the_projection_is_one_fused_addmm():
    if BACKEND != "torch":
        pytest.skip("the fused call is PyTorch's path; XLA and TensorFlow fuse the bias add themselves")
    import torch
    from torch.profiler import ProfilerActivity, profile

    x, kernel, bias = (torch.from_numpy(_data(s, i)) for i, s in enumerate([(2, 7, 6), (6, 4), (4,)]))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = linear(x, kernel, bias)
    names = {event.key for event in prof.key_averages()}
    assert "aten::addmm" in names
    assert not names & {"aten::add", "aten::add_", "aten::mm", "aten::bmm"}, names
    np.testing.assert_allclose(out.numpy(), x.numpy() @ kernel.numpy() + bias.numpy(), rtol=1e-5, atol=1e-5)
