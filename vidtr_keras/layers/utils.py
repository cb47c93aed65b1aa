"""Small helpers shared by the layers, models and complexity model: size arguments, shape checks,
linear resizing of parameter grids, and the linear projection every layer uses."""

import keras
import numpy as np
from keras import ops

from vidtr_keras.backends import torch_ops


def linear(x, kernel, bias):
    """`x @ kernel + bias` over the last axis of `x`: one fused call on PyTorch
    (`vidtr_keras.backends.torch_ops`), the plain expression elsewhere (XLA and TensorFlow fuse the add)."""
    if keras.backend.backend() == "torch":
        return torch_ops.linear(x, kernel, bias)
    return ops.matmul(x, kernel) + bias


def dropout(layer, x, training):
    """`layer(x, training=training)` for a `keras.layers.Dropout`, called only where it can drop
    (training with a positive rate): elsewhere it is the identity, and skipping the call skips Keras'
    per-layer call overhead, which on PyTorch's eager execution adds up over a model's dozens of
    dropout layers at inference. On PyTorch an unseeded layer's mask comes from
    `vidtr_keras.backends.torch_ops.dropout` (cheaper random bits than Keras' `bernoulli_`)."""
    if not (training and layer.rate > 0):
        return x
    if keras.backend.backend() == "torch" and layer.seed is None and layer.noise_shape is None:
        return torch_ops.dropout(x, layer.rate)
    return layer(x, training=training)


@keras.saving.register_keras_serializable(package="vidtr_keras")
class Linear(keras.layers.Dense):
    """`keras.layers.Dense` whose biased float path is `linear` (one fused call on PyTorch).

    The same weights (`kernel`, `bias`), configuration and checkpoint paths as Dense; quantized calls and
    Dense without a bias keep Dense's own path.
    """

    def call(self, inputs, training=None):
        if self.bias is None:
            return super().call(inputs, training=training)
        x = linear(inputs, self.kernel, self.bias)
        return x if self.activation is None else self.activation(x)


def _sizes(value, n, name, layout):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * n
    try:
        value = tuple(int(v) for v in value)
    except TypeError as err:
        raise ValueError(f"{name} must be an int or {layout}, got {value!r}.") from err
    if len(value) != n:
        raise ValueError(f"{name} must be an int or {layout}, got {value}.")
    if any(v <= 0 for v in value):
        raise ValueError(f"{name} must be positive, got {value}.")
    return value


def to_pair(value, name="value"):
    """An int or (h, w) -> (h, w) of positive ints; a ValueError naming `name` otherwise."""
    return _sizes(value, 2, name, "(h, w)")


def to_triple(value, name="value"):
    """An int or (t, h, w) -> (t, h, w) of positive ints; a ValueError naming `name` otherwise."""
    return _sizes(value, 3, name, "(t, h, w)")


def static_dim(x, axis):
    """The size of `axis` of `x` as a Python int, or None when it is only known at run time."""
    dim = x.shape[axis]
    return None if dim is None else int(dim)


def check_rank(name, shape, rank, layout):
    if len(shape) != rank:
        raise ValueError(f"{name} expects a rank-{rank} input {layout}, got shape {tuple(shape)} (rank {len(shape)}).")


def check_heads(name, width, num_heads):
    if num_heads <= 0:
        raise ValueError(f"{name}: num_heads must be positive, got {num_heads}.")
    if width is not None and width % num_heads != 0:
        raise ValueError(
            f"{name}: num_heads={num_heads} does not divide the width {width} "
            f"({width} / {num_heads} = {width / num_heads:.3f})."
        )


def interpolation_matrix(new_size, old_size):
    """(new_size, old_size) matrix of 1-D linear interpolation with half-pixel centres.

    The same sampling as `torch.nn.functional.interpolate(mode="linear", align_corners=False)` (no
    antialiasing when shrinking), so that resized position embeddings match what PyTorch users expect.
    Equal sizes give the identity exactly.
    """
    new_size, old_size = int(new_size), int(old_size)
    m = np.zeros((new_size, old_size), dtype="float32")
    if new_size == old_size:
        np.fill_diagonal(m, 1.0)
        return m
    scale = old_size / new_size
    for i in range(new_size):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        lo = min(int(np.floor(src)), old_size - 1)
        hi = min(lo + 1, old_size - 1)
        frac = src - lo
        m[i, lo] += 1.0 - frac
        m[i, hi] += frac
    return m


def resize_axes(x, old_sizes, new_sizes, first_axis=0):
    """Linearly resizes consecutive axes of `x` starting at `first_axis` (separable = multi-linear)."""
    letters = "abcdefghijklmnop"
    rank = len(x.shape)
    for offset, (old, new) in enumerate(zip(old_sizes, new_sizes)):
        if old == new:
            continue
        axis = first_axis + offset
        matrix = ops.convert_to_tensor(interpolation_matrix(new, old), dtype=x.dtype)
        src = letters[:rank]
        dst = src[:axis] + "z" + src[axis + 1 :]
        x = ops.einsum(f"z{src[axis]},{src}->{dst}", matrix, x)
    return x
