"""Joint space-time attention (vanilla video transformer) and VidTr's separable attention.

Both hold their weights as the official code does: one input projection producing q, k and v
(kernel (d, 3d), split in that order) and one output projection (d, d).

Paper: VidTr, ICCV 2021, Eq. (1)-(8).
"""

import math

import keras
from keras import ops

from vidtr_keras.backends.torch_cpu import fused_attention_by_default
from vidtr_keras.config import is_fused_attention_enabled
from vidtr_keras.layers.temporal_pooling import TopKStdPooling
from vidtr_keras.layers.utils import check_heads, check_rank, dropout, linear

SEPARABLE_ORDERS = ("temporal_spatial", "spatial_temporal", "spatial", "temporal")


class _ProjectedAttention(keras.layers.Layer):
    """Shared weights and projections of the attention layers."""

    def __init__(self, num_heads, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        check_heads(self.name, None, self.num_heads)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(f"{self.name}: the token width must be known, got {input_shape}.")
        check_heads(self.name, dim, self.num_heads)
        self.hidden_dim = dim
        init = keras.initializers.GlorotUniform()
        self.in_proj_kernel = self.add_weight(shape=(dim, 3 * dim), initializer=init, name="in_proj_kernel")
        self.in_proj_bias = self.add_weight(shape=(3 * dim,), initializer="zeros", name="in_proj_bias")
        self.out_proj_kernel = self.add_weight(shape=(dim, dim), initializer=init, name="out_proj_kernel")
        self.out_proj_bias = self.add_weight(shape=(dim,), initializer="zeros", name="out_proj_bias")

    def _check_width(self, x):
        if x.shape[-1] != self.hidden_dim:
            raise ValueError(f"{self.name}: built for width {self.hidden_dim}, got an input of width {x.shape[-1]}.")

    def _split_heads(self, x):
        shape = ops.shape(x)
        head_dim = self.hidden_dim // self.num_heads
        return ops.reshape(x, tuple(shape[:-1]) + (self.num_heads, head_dim))

    def _merge_heads(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, tuple(shape[:-2]) + (self.hidden_dim,))

    def _project_qkv(self, inputs, value_inputs=None):
        """q, k, v = in_proj(inputs) with heads split off; v from `value_inputs` when given."""
        d = self.hidden_dim
        kernel, bias = self.in_proj_kernel, self.in_proj_bias
        if value_inputs is None:
            # One split rather than three slices: on PyTorch the backward of a split is one concatenation,
            # that of each slice a zero-filled full-width gradient.
            q, k, v = ops.split(linear(inputs, kernel, bias), 3, axis=-1)
        else:
            q, k = ops.split(linear(inputs, kernel[:, : 2 * d], bias[: 2 * d]), 2, axis=-1)
            v = linear(value_inputs, kernel[:, 2 * d :], bias[2 * d :])
        scale = 1.0 / math.sqrt(d // self.num_heads)
        return self._split_heads(q * scale), self._split_heads(k), self._split_heads(v)

    def _output(self, heads):
        return linear(self._merge_heads(heads), self.out_proj_kernel, self.out_proj_bias)

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "dropout": self.dropout})
        return config


@keras.saving.register_keras_serializable(package="vidtr_keras")
class JointAttention(_ProjectedAttention):
    """Multi-head self-attention over a whole token sequence: the vanilla video transformer's joint
    space-time attention over 1 + T*S tokens (attention map (T*S+1)^2 per head).

    Args:
        num_heads: heads; must divide the width.
        dropout: dropout on the attention probabilities.
        fused_attention: compute softmax(q k^T) v as one `keras.ops.dot_product_attention` call, which
            never writes the attention map, wherever the probabilities are neither returned nor dropped
            out (the fused call has neither): True, False, or None to follow
            `vidtr_keras.config.is_fused_attention_enabled()`, whose automatic default is PyTorch only
            (`vidtr_keras.backends.torch_cpu`). Outputs are equal up to float rounding either way.

    Call arguments:
        inputs: (batch, tokens, d); queries and keys (and values unless `value_inputs` is given).
        value_inputs: optional (batch, tokens, d) source of the values. The official vanilla model
            adds its position embedding to queries and keys only, so it passes the un-embedded
            normalised tokens here.
        training: dropout switch.
        return_attention_scores: also return the attention probabilities (before dropout), as
            `keras.layers.MultiHeadAttention` does; off by default, where nothing extra is kept.

    Returns:
        (batch, tokens, d); with `return_attention_scores=True` the pair (outputs, scores) with scores
        (batch, heads, tokens, tokens), rows = queries.
    """

    def __init__(self, num_heads, dropout=0.0, fused_attention=None, **kwargs):
        super().__init__(num_heads, dropout=dropout, **kwargs)
        self.fused_attention = None if fused_attention is None else bool(fused_attention)

    def uses_fused_attention(self, training=None, return_attention_scores=False):
        """Whether a call with these arguments computes softmax(q k^T) v as one fused call: never when
        the probabilities are returned or dropped out (training with attention dropout); otherwise as
        `fused_attention` says, or the global switch, or the backend's default."""
        if return_attention_scores or (training and self.dropout > 0):
            return False
        enabled = self.fused_attention
        if enabled is None:
            enabled = is_fused_attention_enabled()
        if enabled is None:
            enabled = fused_attention_by_default(keras.backend.backend())
        return enabled

    def call(self, inputs, value_inputs=None, training=None, return_attention_scores=False):
        check_rank(self.name, inputs.shape, 3, "(batch, tokens, dim)")
        self._check_width(inputs)
        q, k, v = self._project_qkv(inputs, value_inputs)
        if self.uses_fused_attention(training, return_attention_scores):  # q is already scaled by 1/sqrt(d_head)
            return self._output(ops.dot_product_attention(q, k, v, scale=1.0))
        scores = ops.softmax(ops.einsum("bqhd,bkhd->bhqk", q, k), axis=-1)
        probs = dropout(self.dropout_layer, scores, training)
        out = self._output(ops.einsum("bhqk,bkhd->bqhd", probs, v))
        return (out, scores) if return_attention_scores else out

    def compute_output_spec(self, inputs, value_inputs=None, training=None, return_attention_scores=False):
        out = keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return out
        n = inputs.shape[1]
        return out, keras.KerasTensor((inputs.shape[0], self.num_heads, n, n), dtype=self.compute_dtype)

    def compute_output_shape(self, inputs_shape, value_inputs_shape=None):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config["fused_attention"] = self.fused_attention
        return config


@keras.saving.register_keras_serializable(package="vidtr_keras")
class SeparableAttention(_ProjectedAttention):
    """VidTr's separable attention on a (frames, patches) token grid, as the official code computes it.

    One shared projection gives q, k, v. With `order="temporal_spatial"` (the paper's MSA_s(MSA_t(.)),
    Eq. 1): temporal attention over the frames of each spatial column and head,
    out_t = softmax(q k^T / sqrt(d_head)) v; then spatial attention over the patches of each frame with
    queries and keys = the SAME q, k (not new projections of out_t) and values = out_t; then out_proj.
    `order="spatial_temporal"` swaps the two (Table 4b); `"spatial"` (spatial-only baseline) and
    `"temporal"` run one of them. The grid may include the class-token row and column
    (VidTr-S/M/L) or not (C-VidTr).

    With `frames_dropped > 0` the temporal attention is pooled by `TopKStdPooling`: only the rows of
    the T - k most informative query frames are kept (per batch item, spatial column and head), q and k
    are gathered with the same indices for the spatial step, and the selection is returned so the
    caller can gather its residual stream per head.

    Args:
        num_heads: heads; must divide the width.
        order: one of "temporal_spatial", "spatial_temporal", "spatial", "temporal".
        frames_dropped: frames removed by std-topK pooling in this layer (0 = none).
        second_softmax: official second softmax of the kept rows (see `TopKStdPooling`).
        keep_first: always keep frame row 0 (the class-token row of the grid layout).
        dropout: dropout on the attention probabilities.

    Call arguments:
        inputs: (batch, T, S, d) token grid (normalised; position embedding already added).
        training: dropout switch.
        return_attention_scores: also return the attention probabilities (before dropout) in a dict,
            in the style of `keras.layers.MultiHeadAttention`; off by default.

    Returns:
        outputs (batch, T, S, d) without pooling; with pooling the pair (outputs (batch, T - k, S, d),
        selection (batch, S, heads, T - k, T)), the one-hot frame selection of every head.
        With `return_attention_scores=True`: (that result, scores), scores a dict with
        "temporal" (batch, S, heads, T', T) (rows = query frames; with pooling the kept rows after the
        second softmax, exactly what multiplies the values, plus "temporal_before_pooling"
        (batch, S, heads, T, T) and "selection"), and "spatial" (batch, T', heads, S, S) (rows =
        query patches, T' the frame rows the spatial step runs on); a one-step order has one of them.

    Example:
    >>> layer = SeparableAttention(num_heads=4)
    >>> out = layer(keras.ops.zeros((2, 9, 17, 32)))
    >>> out.shape
    (2, 9, 17, 32)
    """

    def __init__(
        self,
        num_heads,
        order="temporal_spatial",
        frames_dropped=0,
        second_softmax=True,
        keep_first=False,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(num_heads, dropout=dropout, **kwargs)
        if order not in SEPARABLE_ORDERS:
            raise ValueError(f"order must be one of {SEPARABLE_ORDERS}, got {order!r}.")
        self.order = order
        self.frames_dropped = int(frames_dropped)
        self.second_softmax = bool(second_softmax)
        self.keep_first = bool(keep_first)
        if self.frames_dropped and order in ("spatial",):
            raise ValueError(f"{self.name}: a spatial-only layer has no temporal attention to pool.")
        self.pooling = (
            TopKStdPooling(
                self.frames_dropped,
                second_softmax=self.second_softmax,
                keep_first=self.keep_first,
                dtype=self.dtype_policy,
                name="std_topk_pooling",
            )
            if self.frames_dropped
            else None
        )

    def _temporal(self, q, k, v, training, scores=None):
        probs = ops.softmax(ops.einsum("btshd,bushd->bshtu", q, k), axis=-1)
        selection = None
        if self.pooling is not None:
            if scores is not None:
                scores["temporal_before_pooling"] = probs
            probs, selection = self.pooling(probs)
            if scores is not None:
                scores["selection"] = selection
        if scores is not None:
            scores["temporal"] = probs
        probs = dropout(self.dropout_layer, probs, training)
        return ops.einsum("bshtu,bushd->btshd", probs, v), selection

    def _spatial(self, q, k, v, training, scores=None):
        # Attention within each frame row: with the (batch, frame, head) axes moved in front these are
        # plain batched matmuls, the same products as the einsums "btshd,btrhd->bthsr" and
        # "bthsr,btrhd->btshd"; written out because XLA on the CPU ran the einsum form (batch axes not
        # leading) markedly slower at VidTr-S's shapes (9 rows x 12 heads of 197x197 maps).
        qh, kh, vh = (ops.transpose(x, (0, 1, 3, 2, 4)) for x in (q, k, v))  # (b, t, h, s, d)
        probs = ops.softmax(ops.matmul(qh, ops.swapaxes(kh, -1, -2)), axis=-1)  # (b, t, h, s, r)
        if scores is not None:
            scores["spatial"] = probs
        probs = dropout(self.dropout_layer, probs, training)
        return ops.transpose(ops.matmul(probs, vh), (0, 1, 3, 2, 4))

    def call(self, inputs, training=None, return_attention_scores=False):
        check_rank(self.name, inputs.shape, 4, "(batch, frames, patches, dim)")
        self._check_width(inputs)
        q, k, v = self._project_qkv(inputs)
        selection = None
        scores = {} if return_attention_scores else None
        if self.order == "temporal_spatial":
            out, selection = self._temporal(q, k, v, training, scores)
            if selection is not None:
                q = gather_frames(q, selection)
                k = gather_frames(k, selection)
            out = self._spatial(q, k, out, training, scores)
        elif self.order == "spatial_temporal":
            out = self._spatial(q, k, v, training, scores)
            out, selection = self._temporal(q, k, out, training, scores)
        elif self.order == "spatial":
            out = self._spatial(q, k, v, training, scores)
        else:
            out, selection = self._temporal(q, k, v, training, scores)
        out = self._output(out)
        result = out if selection is None else (out, selection)
        return (result, scores) if return_attention_scores else result

    def compute_output_shape(self, input_shape):
        b, t, s, d = input_shape
        kept = None if t is None else t - self.frames_dropped
        out = (b, kept, s, d)
        if not self.frames_dropped:
            return out
        return out, (b, s, self.num_heads, kept, t)

    def attention_score_shapes(self, input_shape):
        """The shapes of the dict `call(..., return_attention_scores=True)` returns."""
        b, t, s, _ = input_shape
        h = self.num_heads
        kept = None if t is None else t - self.frames_dropped
        shapes = {}
        if self.order != "spatial":
            shapes["temporal"] = (b, s, h, kept, t)
            if self.frames_dropped:
                shapes["temporal_before_pooling"] = (b, s, h, t, t)
                shapes["selection"] = (b, s, h, kept, t)
        if self.order != "temporal":
            rows = kept if self.order == "temporal_spatial" else t
            shapes["spatial"] = (b, rows, h, s, s)
        return shapes

    def compute_output_spec(self, inputs, training=None, return_attention_scores=False):
        def spec(shape):
            return keras.KerasTensor(shape, dtype=self.compute_dtype)

        shapes = self.compute_output_shape(inputs.shape)
        result = spec(shapes) if not self.frames_dropped else (spec(shapes[0]), spec(shapes[1]))
        if not return_attention_scores:
            return result
        return result, {key: spec(shape) for key, shape in self.attention_score_shapes(inputs.shape).items()}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "order": self.order,
                "frames_dropped": self.frames_dropped,
                "second_softmax": self.second_softmax,
                "keep_first": self.keep_first,
            }
        )
        return config


def gather_frames(heads, selection):
    """Gathers frames per head: heads (b, T, S, h, dh), selection (b, S, h, K, T) -> (b, K, S, h, dh)."""
    return ops.einsum("bshjt,btshd->bjshd", ops.cast(selection, heads.dtype), heads)
