"""The linear projection of every VidTr layer (`vidtr_keras.layers.utils.linear` and `Linear`):

- it is `x @ kernel + bias` on every backend, and `Linear` is `keras.layers.Dense` with the same weights,
  paths, configuration, LoRA and mixed-precision behaviour;
- on PyTorch it runs as one fused `addmm` (`vidtr_keras.backends.torch_ops`), the official code's
  `nn.Linear`, with no separate pass for the bias (what made the official code's C-VidTr-S faster).

And the dropout every block applies (`vidtr_keras.layers.utils.dropout`): the identity outside training
(without calling the layer), the layer's own dropout when seeded, and on PyTorch an inverted dropout drawn
from 31-bit integers (`torch_ops.dropout`): kept elements scaled by 1 / keep, the rest zero, the keep rate
right, repeatable from torch's seed, the gradient the mask.
"""

import keras
import numpy as np
import pytest
from keras import ops

from vidtr_keras.backends import torch_ops
from vidtr_keras.layers.utils import Linear, dropout, linear

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


def test_dropout_outside_training_is_the_identity_without_calling_the_layer():
    class Counting(keras.layers.Dropout):
        calls = 0

        def call(self, *args, **kwargs):
            Counting.calls += 1
            return super().call(*args, **kwargs)

    x = ops.convert_to_tensor(_data((4, 5), 6))
    for training, rate in ((False, 0.5), (None, 0.5), (True, 0.0)):
        assert dropout(Counting(rate), x, training) is x
    assert Counting.calls == 0


def test_a_seeded_dropout_layer_keeps_its_own_seeded_masks():
    x = ops.ones((64, 64))
    ours = ops.convert_to_numpy(dropout(keras.layers.Dropout(0.5, seed=7), x, True))
    keras_own = ops.convert_to_numpy(keras.layers.Dropout(0.5, seed=7)(x, training=True))
    np.testing.assert_array_equal(ours, keras_own)
    assert 0 < (ours == 0).mean() < 1


def _torch():
    if BACKEND != "torch":
        pytest.skip("torch_ops.dropout is the PyTorch path; the other backends keep keras.layers.Dropout")
    import torch

    return torch


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_torch_dropout_keeps_the_rate_and_scales_the_kept_elements(rate):
    torch = _torch()
    x = torch.from_numpy(_data((1000, 1000), 7))
    out = torch_ops.dropout(x, rate).numpy()
    kept = out != 0
    n = kept.size
    # Binomial(n, 1 - rate): within 6 standard deviations.
    assert abs(kept.sum() - n * (1 - rate)) < 6 * (n * rate * (1 - rate)) ** 0.5
    np.testing.assert_allclose(out[kept], x.numpy()[kept] / (1 - rate), rtol=1e-6)
    # Independent of position: the two halves keep alike.
    assert abs(kept[:500].mean() - kept[500:].mean()) < 0.01


def test_torch_dropout_is_repeatable_from_the_seed_and_through_the_utils_path():
    torch = _torch()
    x = torch.from_numpy(_data((50, 40), 8))
    layer = keras.layers.Dropout(0.3)
    torch.manual_seed(3)
    first = ops.convert_to_numpy(dropout(layer, x, True))
    torch.manual_seed(3)
    again = ops.convert_to_numpy(torch_ops.dropout(x, 0.3))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, ops.convert_to_numpy(torch_ops.dropout(x, 0.3)))


def test_torch_dropout_gradient_is_the_scaled_mask_and_dtype_is_kept():
    torch = _torch()
    x = torch.from_numpy(_data((30, 20), 9)).requires_grad_()
    out = torch_ops.dropout(x, 0.25)
    out.backward(torch.ones_like(out))
    kept = (out != 0).detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.75, rtol=1e-6)
    half = torch_ops.dropout(x.detach().to(torch.bfloat16), 0.25)
    assert half.dtype == torch.bfloat16
