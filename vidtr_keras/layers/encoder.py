"""The pre-LN VidTr encoder block: x += Attn(LN1(x)); x += MLP(LN2(x)), with optional temporal pooling
and stochastic depth."""

import numbers

import keras
from keras import ops

from vidtr_keras.backends import xla_cpu
from vidtr_keras.config import is_gradient_fence_enabled
from vidtr_keras.layers.attention import SEPARABLE_ORDERS, JointAttention, SeparableAttention, gather_frames
from vidtr_keras.layers.drop_path import DropPath, scale_samples
from vidtr_keras.layers.temporal_pooling import TemporalAveragePooling, TemporalConvPooling
from vidtr_keras.layers.utils import Linear, check_rank, dropout

ATTENTION_TYPES = ("joint",) + SEPARABLE_ORDERS
POOLING_TYPES = ("std_topk", "average", "conv")
POSITION_TARGETS = ("qkv", "qk")


@keras.saving.register_keras_serializable(package="vidtr_keras")
class VidTrEncoderBlock(keras.layers.Layer):
    """One pre-LN transformer layer of VidTr (the official `TransformerEncoderLayer` with
    `normalize_before=True`): x = x + Dropout(Attn(LN1(x) [+ pos])); x = x + MLP(LN2(x)).

    Args:
        num_heads: attention heads.
        mlp_dim: hidden width of the MLP.
        attention: "joint" (tokens (batch, N, d)) or a separable order, "temporal_spatial" (VidTr),
            "spatial_temporal", "spatial" or "temporal" (token grid (batch, T, S, d)).
        frames_dropped: frames this layer removes (separable attention only).
        pooling: how: "std_topk" (inside the temporal attention, per head, as C-VidTr), "average" or
            "conv" (Table 4d alternatives, applied to the token grid after the attention).
        input_frames: frame rows this layer receives; needed only by "conv" pooling, whose stride
            is input_frames / (input_frames - frames_dropped).
        second_softmax: std-topK's official second softmax.
        keep_first: pooling always keeps frame row 0 (grid layout with a class-token row).
        position_embedding_target: where a given position embedding goes: "qkv" (added to the
            normalised input, as the separable models do) or "qk" (queries and keys only, as the
            official vanilla model does).
        mlp_activation: "relu" (released code) or "gelu" (ViT), or any Keras activation name.
        dropout: dropout after the attention, inside and after the MLP.
        attention_dropout: dropout on the attention probabilities.
        layer_norm_epsilon: LayerNorm epsilon (1e-5, PyTorch's default, in the official code).
        drop_path: stochastic depth (`DropPath`, Huang et al. 2016, as in timm's ViT): in training,
            each sample's attention branch and MLP branch are dropped with this probability before
            their residual add (kept ones scaled by 1 / (1 - drop_path)). 0 (the default, the paper's
            model): no DropPath layers at all, so no extra state and no extra random draws.
        remat: rematerialise the block in training: keep only its inputs for the backward pass and
            recompute the rest there (about a third more compute for a fraction of the activation
            memory; results are the same, dropout included). On JAX on the CPU it needs XLA to keep
            jax.checkpoint's barriers, which importing vidtr_keras arranges
            (`vidtr_keras.backends.xla_cpu`; a warning says when the setting is missing).
        gradient_fence: in training, pass the residual stream's gradient through an exact identity
            matmul at the block's input and the MLP's input, so that XLA:CPU computes it once instead
            of inside each of its consumers (`vidtr_keras.backends.xla_cpu`): True, False, or None to
            follow `vidtr_keras.config.is_gradient_fence_enabled()`, whose automatic default is JAX on
            the CPU only. Outputs and gradients are the same either way.

    Call arguments:
        tokens: (batch, N, d) for joint attention, (batch, T, S, d) for separable attention.
        position_embedding: optional embedding added in this layer (broadcastable to `tokens`; with
            `class_token`, the single-layout (1, 1 + T*S, d) embedding of class token and patches).
        class_token: optional (batch, 1, d) class token that bypasses separable attention (C-VidTr):
            its attention output is its own normalised input (plus position embedding), it goes
            through the residual and the MLP like any token.
        training: dropout switch.
        return_attention_scores: also return this layer's attention probabilities (before dropout);
            off by default, where nothing extra is computed or kept.

    Returns:
        tokens (frames reduced by pooling), or (tokens, class_token) when a class token was given.
        With `return_attention_scores=True`: (that result, scores), scores a dict: {"joint":
        (batch, heads, N, N)} for joint attention, else the dict of `SeparableAttention` ("temporal",
        "spatial", and with std-topK pooling "temporal_before_pooling" and "selection").
    """

    def __init__(
        self,
        num_heads,
        mlp_dim,
        attention="temporal_spatial",
        frames_dropped=0,
        pooling="std_topk",
        input_frames=None,
        second_softmax=True,
        keep_first=False,
        position_embedding_target="qkv",
        mlp_activation="relu",
        dropout=0.1,
        attention_dropout=0.1,
        layer_norm_epsilon=1e-5,
        drop_path=0.0,
        remat=False,
        gradient_fence=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention not in ATTENTION_TYPES:
            raise ValueError(f"attention must be one of {ATTENTION_TYPES}, got {attention!r}.")
        if pooling not in POOLING_TYPES:
            raise ValueError(f"pooling must be one of {POOLING_TYPES}, got {pooling!r}.")
        if position_embedding_target not in POSITION_TARGETS:
            raise ValueError(
                f"position_embedding_target must be one of {POSITION_TARGETS}, got {position_embedding_target!r}."
            )
        if attention == "joint" and frames_dropped:
            raise ValueError("Temporal pooling needs separable attention; joint attention has no frame axis.")
        self.num_heads = int(num_heads)
        self.mlp_dim = int(mlp_dim)
        self.attention = attention
        self.frames_dropped = int(frames_dropped)
        self.pooling = pooling
        self.input_frames = None if input_frames is None else int(input_frames)
        self.second_softmax = bool(second_softmax)
        self.keep_first = bool(keep_first)
        self.position_embedding_target = position_embedding_target
        self.mlp_activation = mlp_activation
        self.dropout = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        if isinstance(drop_path, bool) or not isinstance(drop_path, numbers.Real) or not 0 <= drop_path < 1:
            raise ValueError(f"{self.name}: drop_path must be a probability in [0, 1), got {drop_path!r}.")
        self.drop_path = float(drop_path)
        self.remat = bool(remat)
        self.gradient_fence = None if gradient_fence is None else bool(gradient_fence)
        self._in_remat = False

        policy = self.dtype_policy
        self.norm1 = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy, name="norm1")
        self.norm2 = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy, name="norm2")
        if attention == "joint":
            self.attn = JointAttention(self.num_heads, dropout=self.attention_dropout, dtype=policy, name="attention")
        else:
            self.attn = SeparableAttention(
                self.num_heads,
                order=attention,
                frames_dropped=self.frames_dropped if pooling == "std_topk" else 0,
                second_softmax=self.second_softmax,
                keep_first=self.keep_first,
                dropout=self.attention_dropout,
                dtype=policy,
                name="attention",
            )
        self.token_pooling = None
        if self.frames_dropped and pooling == "average":
            self.token_pooling = TemporalAveragePooling(
                self.frames_dropped, keep_first=self.keep_first, dtype=policy, name="pooling"
            )
        elif self.frames_dropped and pooling == "conv":
            n = None if self.input_frames is None else self.input_frames - int(self.keep_first)
            if n is None or n % (n - self.frames_dropped):
                raise ValueError(
                    f"Convolutional pooling needs input_frames with (frames - dropped) dividing the frame "
                    f"count (a strided convolution), got input_frames={input_frames}, frames_dropped={frames_dropped}."
                )
            self.token_pooling = TemporalConvPooling(
                n // (n - self.frames_dropped), keep_first=self.keep_first, dtype=policy, name="pooling"
            )
        self.mlp_dense1 = Linear(self.mlp_dim, activation=mlp_activation, dtype=policy, name="mlp_dense1")
        self.attn_dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        self.mlp_dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        self.out_dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        # Only with a positive rate: at 0 the block is exactly the paper's (same layers, state and draws).
        self.attn_drop_path = self.mlp_drop_path = None
        if self.drop_path > 0:
            self.attn_drop_path = DropPath(self.drop_path, dtype=policy, name="attn_drop_path")
            self.mlp_drop_path = DropPath(self.drop_path, dtype=policy, name="mlp_drop_path")

    def _check_tokens(self, shape):
        if self.attention == "joint":
            check_rank(self.name, shape, 3, "(batch, tokens, dim) for joint attention")
        else:
            check_rank(self.name, shape, 4, "(batch, frames, patches, dim) for separable attention")

    def build(self, tokens_shape):
        self._check_tokens(tokens_shape)
        dim = tokens_shape[-1]
        if dim is None:
            raise ValueError(f"{self.name}: the token width must be known, got {tokens_shape}.")
        # The MLP's output width is the token width, known only here.
        self.mlp_dense2 = Linear(dim, dtype=self.dtype_policy, name="mlp_dense2")
        self.norm1.build(tokens_shape)
        self.norm2.build(tokens_shape)
        self.attn.build(tokens_shape)
        if self.token_pooling is not None:
            self.token_pooling.build(tokens_shape)
        self.mlp_dense1.build(tuple(tokens_shape[:-1]) + (dim,))
        self.mlp_dense2.build(tuple(tokens_shape[:-1]) + (self.mlp_dim,))

    def uses_gradient_fence(self, training=None):
        """Whether a call with this `training` fences the residual gradient: only in training, then as
        `gradient_fence` says, or the global switch, or the backend's default (JAX on the CPU)."""
        if not training:
            return False
        enabled = self.gradient_fence
        if enabled is None:
            enabled = is_gradient_fence_enabled()
        if enabled is None:
            enabled = xla_cpu.on_jax_cpu()
        return enabled

    def _fence(self, x, training):
        return xla_cpu.gradient_fence(x) if self.uses_gradient_fence(training) else x

    def _drop_path_scales(self, tokens, training):
        """Stochastic depth's per-sample factors (attention branch, MLP branch), drawn once per call
        and shared by the patch tokens and the class token (parts of the same branch); (None, None)
        when nothing is dropped."""
        if not training or self.attn_drop_path is None:
            return None, None
        batch = ops.shape(tokens)[0]
        return self.attn_drop_path.keep_scale(batch), self.mlp_drop_path.keep_scale(batch)

    def _mlp(self, x, training, scale=None):
        x = self._fence(x, training)
        h = self.mlp_dense1(self.norm2(x))
        h = self.mlp_dense2(dropout(self.mlp_dropout_layer, h, training))
        return x + scale_samples(dropout(self.out_dropout_layer, h, training), scale)

    def call(self, tokens, position_embedding=None, class_token=None, training=None, return_attention_scores=False):
        self._check_tokens(tokens.shape)
        if self.remat and training and not return_attention_scores and not self._in_remat:
            return self._rematerialized_call(tokens, position_embedding, class_token, training)
        if class_token is not None and self.attention == "joint":
            raise ValueError(f"{self.name}: a bypassing class_token is only for separable attention.")
        tokens = self._fence(tokens, training)
        y = self.norm1(tokens)
        class_pos = None
        if position_embedding is not None:
            pos = ops.cast(position_embedding, y.dtype)
            if class_token is not None:
                shape = ops.shape(tokens)
                class_pos = pos[:, :1]
                pos = ops.reshape(pos[:, 1:], (1, shape[1], shape[2], shape[3]))
        scores_kwargs = {"return_attention_scores": True} if return_attention_scores else {}
        if self.attention == "joint":
            if position_embedding is None:
                out = self.attn(y, training=training, **scores_kwargs)
            elif self.position_embedding_target == "qk":
                out = self.attn(y + pos, value_inputs=y, training=training, **scores_kwargs)
            else:
                out = self.attn(y + pos, training=training, **scores_kwargs)
            if return_attention_scores:
                out, scores = out
                scores = {"joint": scores}
        else:
            out = self.attn(y if position_embedding is None else y + pos, training=training, **scores_kwargs)
            if return_attention_scores:
                out, scores = out
            if isinstance(out, (tuple, list)):
                out, selection = out
                # The residual stream keeps, in each head's channels, the frames that head kept.
                shape = ops.shape(tokens)
                heads = ops.reshape(tokens, (shape[0], shape[1], shape[2], self.num_heads, -1))
                heads = gather_frames(heads, selection)
                tokens = ops.reshape(heads, (shape[0], -1, shape[2], shape[3]))
        # Stochastic depth drops the attention branch before the residual add (after std-topK's
        # per-head gather, before average / convolutional pooling of the sum).
        attn_scale, mlp_scale = self._drop_path_scales(tokens, training)
        tokens = tokens + scale_samples(dropout(self.attn_dropout_layer, out, training), attn_scale)
        if self.token_pooling is not None:
            tokens = self.token_pooling(tokens)
        if class_token is None:
            tokens = self._mlp(tokens, training, mlp_scale)
            return (tokens, scores) if return_attention_scores else tokens
        # C-VidTr: the class token skips the separable attention; its "attention output" is its own
        # normalised input (plus its position embedding), without out_proj.
        c = self.norm1(class_token)
        if class_pos is not None:
            c = c + class_pos
        class_token = class_token + scale_samples(dropout(self.attn_dropout_layer, c, training), attn_scale)
        # The MLP acts per token: one pass over the class token and the grid as one sequence, as the
        # official code's (class, frames x patches) sequence gets, instead of a second pass whose
        # matmuls on a single token would read the MLP's weights again for one row.
        shape = ops.shape(tokens)
        joint = ops.concatenate([class_token, ops.reshape(tokens, (shape[0], -1, shape[3]))], axis=1)
        joint = self._mlp(joint, training, mlp_scale)
        result = ops.reshape(joint[:, 1:], shape), joint[:, :1]
        return (result, scores) if return_attention_scores else result

    def _rematerialized_call(self, tokens, position_embedding, class_token, training):
        """The block under `keras.remat`: only its inputs are kept for the backward pass, which runs
        the block's forward again. Dropout must draw the same masks the second time, so the seed
        states of the block's dropout layers go in as inputs, are restored at the start of every
        (re)computation, and their advanced values come out as outputs."""
        xla_cpu.warn_if_remat_undone()
        states = [
            layer.seed_generator.state
            for layer in self._flatten_layers(include_self=False)
            if getattr(layer, "seed_generator", None) is not None
        ]
        given = {"position_embedding": position_embedding, "class_token": class_token}
        names = [name for name, value in given.items() if value is not None]

        def forward(tokens, *args):
            kwargs = dict(zip(names, args[: len(names)]))
            for state, value in zip(states, args[len(names) :]):
                state.assign(value)
            self._in_remat = True
            # Keras' traceback filtering off inside the block: PyTorch's checkpoint ends the
            # backward-pass recomputation early by raising an exception out of the block, and
            # Keras' error handlers (`inject_argument_info_in_traceback`) keep the re-raised
            # exception in a local of a frame on its own traceback. That reference cycle holds
            # the recomputed activations until Python's cyclic garbage collector runs, so they
            # piled up over the backward pass and remat saved no memory on PyTorch.
            filtering = keras.config.is_traceback_filtering_enabled()
            keras.config.disable_traceback_filtering()
            try:
                out = self.call(tokens, training=training, **kwargs)
            finally:
                self._in_remat = False
                if filtering:
                    keras.config.enable_traceback_filtering()
            # Copies: the states are assigned in place again later (PyTorch checks saved tensors).
            return out, [ops.copy(state.value) for state in states]

        args = [given[name] for name in names] + [ops.copy(state.value) for state in states]
        out, new_states = keras.remat(forward)(tokens, *args)
        for state, value in zip(states, new_states):
            state.assign(value)
        return out

    def compute_output_shape(self, tokens_shape, position_embedding_shape=None, class_token_shape=None):
        self._check_tokens(tokens_shape)
        shape = tuple(tokens_shape)
        if self.token_pooling is not None and self.pooling == "conv":
            shape = self.token_pooling.compute_output_shape(shape)
        elif self.frames_dropped:
            t = shape[1]
            shape = (shape[0], None if t is None else t - self.frames_dropped) + shape[2:]
        if class_token_shape is None:
            return shape
        return shape, tuple(class_token_shape)

    def compute_output_spec(
        self, tokens, position_embedding=None, class_token=None, training=None, return_attention_scores=False
    ):
        result = super().compute_output_spec(
            tokens, position_embedding=position_embedding, class_token=class_token, training=training
        )
        if not return_attention_scores:
            return result
        if self.attention == "joint":
            n = tokens.shape[1]
            shapes = {"joint": (tokens.shape[0], self.num_heads, n, n)}
        else:
            shapes = self.attn.attention_score_shapes(tokens.shape)
        return result, {key: keras.KerasTensor(shape, dtype=self.compute_dtype) for key, shape in shapes.items()}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "attention": self.attention,
                "frames_dropped": self.frames_dropped,
                "pooling": self.pooling,
                "input_frames": self.input_frames,
                "second_softmax": self.second_softmax,
                "keep_first": self.keep_first,
                "position_embedding_target": self.position_embedding_target,
                "mlp_activation": self.mlp_activation,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "drop_path": self.drop_path,
                "remat": self.remat,
                "gradient_fence": self.gradient_fence,
            }
        )
        return config
