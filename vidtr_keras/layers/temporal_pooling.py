"""Temporal down-sampling: std-based top-K pooling of the temporal attention (C-VidTr) and the
alternatives of the paper's Table 4d (temporal average pooling, strided 1-D convolution).

Paper: VidTr, ICCV 2021, Eq. (9) and section 3.3.
"""

import keras
import numpy as np
from keras import ops

from vidtr_keras.layers.utils import check_rank, static_dim


def _check_drop(name, frames, frames_dropped, keep_first):
    available = None if frames is None else frames - (1 if keep_first else 0)
    if frames_dropped < 0:
        raise ValueError(f"{name}: frames_dropped must be >= 0, got {frames_dropped}.")
    if available is not None and frames_dropped >= available:
        raise ValueError(
            f"{name}: pooling would drop every frame: {frames_dropped} of {available} frames dropped "
            f"(at least one frame must be kept)."
        )


def std_topk_selection(scores, num_kept, keep_first=False):
    """One-hot selection matrices of the `num_kept` highest-scoring rows, in temporal order.

    Args:
        scores: (..., T) one score per row (here the variance of an attention row).
        num_kept: K, a Python int.
        keep_first: always keep row 0 (the temporal class-token row of the grid model).

    Returns:
        (..., K, T) float matrix `sel` with sel[..., j, i] = 1 when row i is the j-th kept row, so
        `sel @ rows` gathers the kept rows in ascending temporal order.

    Ties are broken towards the earlier frame by an explicit rank, so every backend selects the same
    rows (`top_k` orders ties differently per backend); the gather is a matmul, so out-of-range
    indices cannot occur and gradients reach exactly the kept rows.
    """
    frames = static_dim(scores, -1)
    scores = ops.stop_gradient(scores)
    positions = ops.arange(0, frames)  # (0, n): jax2onnx's arange needs an explicit stop
    if keep_first:
        scores = ops.where(positions == 0, ops.cast(np.inf, scores.dtype), scores)
    other = ops.expand_dims(scores, -2)  # [..., i, j] -> score of j
    this = ops.expand_dims(scores, -1)  # [..., i, j] -> score of i
    earlier = ops.expand_dims(positions, 0) < ops.expand_dims(positions, 1)  # j < i
    beats = ops.logical_or(other > this, ops.logical_and(other == this, earlier))
    rank = ops.sum(ops.cast(beats, "int32"), axis=-1)
    keep = rank < num_kept
    slot = ops.cumsum(ops.cast(keep, "int32"), axis=-1) - 1
    target = ops.reshape(ops.arange(0, num_kept, dtype="int32"), (num_kept, 1))
    sel = ops.logical_and(ops.expand_dims(slot, -2) == target, ops.expand_dims(keep, -2))
    return ops.cast(sel, "float32")


def row_variance(probs):
    """Population variance of each row over its last axis (same ranking as torch.std's unbiased
    estimate; no square root, so no NaN gradient at zero variance)."""
    mean = ops.mean(probs, axis=-1, keepdims=True)
    return ops.mean(ops.square(probs - mean), axis=-1)


@keras.saving.register_keras_serializable(package="vidtr_keras")
class TopKStdPooling(keras.layers.Layer):
    """pool_topK_std: keep the temporal-attention rows (query frames) whose attention is most peaked.

    For each row of a temporal attention map (softmax probabilities, rows = query frames, columns =
    key frames) the standard deviation over the keys is taken; the `T - frames_dropped` rows with the
    highest std are kept, in temporal order. As in the official code (the semantics its checkpoints
    need) the kept rows go through a second softmax (`second_softmax=True`); the paper's Eq. (9) form
    uses the kept rows as they are (`second_softmax=False`). Selection is independent for every
    leading index (batch, spatial location, head).

    Args:
        frames_dropped: k, the number of frames removed.
        second_softmax: apply softmax again to the kept rows (official code).
        keep_first: always keep row 0, the temporal class-token row of the (T+1) x (S+1) grid.

    Call arguments:
        probs: (..., T, T) attention probabilities.

    With `frames_dropped=0` it is the identity (probabilities unchanged, identity selection).

    Returns:
        (pooled, selection): pooled (..., T - k, T) rows to multiply with the values, and the
        (..., T - k, T) one-hot selection to gather anything else (queries, keys, the residual).
    """

    def __init__(self, frames_dropped, second_softmax=True, keep_first=False, **kwargs):
        super().__init__(**kwargs)
        self.frames_dropped = int(frames_dropped)
        self.second_softmax = bool(second_softmax)
        self.keep_first = bool(keep_first)
        _check_drop(self.name, None, self.frames_dropped, self.keep_first)

    def call(self, probs):
        frames = static_dim(probs, -1)
        if len(probs.shape) < 2 or probs.shape[-2] != probs.shape[-1]:
            raise ValueError(f"{self.name}: expects square (..., T, T) attention, got {probs.shape}.")
        _check_drop(self.name, frames, self.frames_dropped, self.keep_first)
        if self.frames_dropped == 0:  # nothing dropped: no selection and no second softmax
            eye = ops.eye(frames, dtype=probs.dtype)
            return probs, ops.broadcast_to(eye, ops.shape(probs))
        num_kept = frames - self.frames_dropped
        sel = ops.cast(std_topk_selection(row_variance(probs), num_kept, self.keep_first), probs.dtype)
        pooled = ops.matmul(sel, probs)
        if self.second_softmax:
            pooled = ops.softmax(pooled, axis=-1)
        return pooled, sel

    def compute_output_shape(self, input_shape):
        t = input_shape[-1]
        kept = None if t is None else t - self.frames_dropped
        shape = tuple(input_shape[:-2]) + (kept, t)
        return shape, shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "frames_dropped": self.frames_dropped,
                "second_softmax": self.second_softmax,
                "keep_first": self.keep_first,
            }
        )
        return config


def adaptive_average_matrix(new_size, old_size):
    """(new, old) matrix averaging bins [floor(j*old/new), ceil((j+1)*old/new)) like adaptive_avg_pool1d."""
    m = np.zeros((new_size, old_size), dtype="float32")
    for j in range(new_size):
        lo = (j * old_size) // new_size
        hi = -((-(j + 1) * old_size) // new_size)
        m[j, lo:hi] = 1.0 / (hi - lo)
    return m


@keras.saving.register_keras_serializable(package="vidtr_keras")
class TemporalAveragePooling(keras.layers.Layer):
    """Table 4d's "temporal average pooling": T frames -> T - k by averaging adjacent frames
    (adaptive bins, so 8 -> 4 averages pairs and 8 -> 6 uses overlapping bins).

    Args:
        frames_dropped: k, the frames removed.
        keep_first: pass row 0 (the class-token row of the grid layout) through and pool the rest.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        tokens: (batch, T, S, d) token grid.
    Returns:
        (batch, T - frames_dropped, S, d); with keep_first, row 0 is passed through untouched.
    """

    def __init__(self, frames_dropped, keep_first=False, **kwargs):
        super().__init__(**kwargs)
        self.frames_dropped = int(frames_dropped)
        self.keep_first = bool(keep_first)
        _check_drop(self.name, None, self.frames_dropped, self.keep_first)

    def call(self, tokens):
        check_rank(self.name, tokens.shape, 4, "(batch, frames, patches, dim)")
        frames = static_dim(tokens, 1)
        _check_drop(self.name, frames, self.frames_dropped, self.keep_first)
        first = tokens[:, :1] if self.keep_first else None
        body = tokens[:, 1:] if self.keep_first else tokens
        n = frames - (1 if self.keep_first else 0)
        m = ops.convert_to_tensor(adaptive_average_matrix(n - self.frames_dropped, n), tokens.dtype)
        body = ops.einsum("jt,btsd->bjsd", m, body)
        return body if first is None else ops.concatenate([first, body], axis=1)

    def compute_output_shape(self, input_shape):
        t = input_shape[1]
        return (input_shape[0], None if t is None else t - self.frames_dropped) + tuple(input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config.update({"frames_dropped": self.frames_dropped, "keep_first": self.keep_first})
        return config


@keras.saving.register_keras_serializable(package="vidtr_keras")
class TemporalConvPooling(keras.layers.Layer):
    """Table 4d's strided 1-D convolution over time: a learned Conv1D along frames (shared over spatial
    locations) with kernel = stride, so T frames become T / stride (8 -> 4 with stride 2).

    Args:
        stride: temporal stride (and kernel size); must divide the frame count.
        keep_first: pass frame row 0 (the class-token row of the grid layout) through untouched.

    Call arguments:
        tokens: (batch, T, S, d).
    Returns:
        (batch, T / stride, S, d).
    """

    def __init__(self, stride=2, keep_first=False, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)
        self.keep_first = bool(keep_first)
        if self.stride < 1:
            raise ValueError(f"{self.name}: stride must be >= 1, got {stride}.")

    def build(self, input_shape):
        check_rank(self.name, input_shape, 4, "(batch, frames, patches, dim)")
        self.conv = keras.layers.Conv2D(
            input_shape[-1],
            kernel_size=(self.stride, 1),
            strides=(self.stride, 1),
            dtype=self.dtype_policy,
            name="conv",
        )
        self.conv.build((None, None, None, input_shape[-1]))

    def call(self, tokens):
        check_rank(self.name, tokens.shape, 4, "(batch, frames, patches, dim)")
        frames = static_dim(tokens, 1)
        n = None if frames is None else frames - (1 if self.keep_first else 0)
        if n is not None and n % self.stride != 0:
            raise ValueError(
                f"{self.name}: a stride-{self.stride} convolution cannot take {n} frames to {n / self.stride:g}; "
                f"the stride must divide the frame count."
            )
        if self.keep_first:
            return ops.concatenate([tokens[:, :1], self.conv(tokens[:, 1:])], axis=1)
        return self.conv(tokens)

    def compute_output_shape(self, input_shape):
        t = input_shape[1]
        if t is not None:
            first = 1 if self.keep_first else 0
            t = first + (t - first) // self.stride
        return (input_shape[0], t) + tuple(input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config.update({"stride": self.stride, "keep_first": self.keep_first})
        return config
