"""Patch (tubelet) embedding, class tokens and learned position embeddings.

Paper: VidTr, ICCV 2021, section 3 (tokens form a (T+1) x (S+1) grid with temporal and spatial class
tokens); the single-class-token layout is that of the vanilla and compact (C-VidTr) models.
"""

import keras
from keras import ops

from vidtr_keras.layers.utils import check_rank, linear, resize_axes, static_dim, to_pair, to_triple

LAYOUTS = ("grid", "single")


@keras.saving.register_keras_serializable(package="vidtr_keras")
class TubeletEmbedding(keras.layers.Layer):
    """Splits a clip into non-overlapping (t, h, w) tubelets and projects each to `hidden_dim`.

    A Conv3D whose kernel and stride are the patch size: (1, 16, 16) is the paper's "square" patching
    (one frame per token), (2, 16, 16) and (4, 16, 16) its "cubic" tubelets (Table 4a), (1, 32, 32) its
    coarse square patches. Unlike the official code, sizes that the patch does not divide are an error
    rather than silently cropped.

    Args:
        hidden_dim: width of each token.
        patch_size: int or (t, h, w).
        **kwargs: standard layer arguments.

    Call arguments:
        clips: (batch, frames, height, width, channels), channels last.

    Returns:
        (batch, frames / t, height / h, width / w, hidden_dim).

    Example:
    >>> emb = TubeletEmbedding(48, patch_size=(2, 8, 8))
    >>> emb(keras.ops.zeros((1, 8, 32, 32, 3))).shape
    (1, 4, 4, 4, 48)
    """

    def __init__(self, hidden_dim, patch_size=(1, 16, 16), **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.patch_size = to_triple(patch_size, "patch_size")
        self.projection = keras.layers.Conv3D(
            self.hidden_dim,
            kernel_size=self.patch_size,
            strides=self.patch_size,
            padding="valid",
            dtype=self.dtype_policy,
            name="projection",
        )

    def _check(self, shape):
        check_rank(self.name, shape, 5, "(batch, frames, height, width, channels)")
        for axis, label, p in zip((1, 2, 3), ("frames", "height", "width"), self.patch_size):
            size = shape[axis]
            if size is not None and size % p != 0:
                raise ValueError(
                    f"{self.name}: {label}={size} is not divisible by the patch size {p} "
                    f"(patch_size={self.patch_size}, input shape {tuple(shape)})."
                )
            if size is not None and size < p:
                raise ValueError(f"{self.name}: {label}={size} is smaller than the patch size {p}.")

    def build(self, input_shape):
        self._check(input_shape)
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the number of channels must be known, got {input_shape}.")
        self.projection.build(input_shape)

    def call(self, clips):
        self._check(clips.shape)
        if self.built and clips.shape[-1] is not None:
            expected = self.projection.kernel.shape[-2]
            if clips.shape[-1] != expected:
                raise ValueError(
                    f"{self.name}: expected {expected} channels (channels last), got {clips.shape[-1]} "
                    f"in an input of shape {tuple(clips.shape)}."
                )
        return self._project(clips)

    def _project(self, clips):
        # Kernel == stride: the Conv3D is one matmul of every flattened tubelet with the kernel. Written
        # that way it exports everywhere (jax2onnx has no 3-D channels-last convolution; LiteRT's
        # transpose takes at most 6 dimensions); same weights, tubelets flattened as (t, h, w, channels).
        t, h, w = self.patch_size
        shape = ops.shape(clips)
        channels = clips.shape[-1]
        grid = (shape[1] // t, shape[2] // h, shape[3] // w)
        x = ops.reshape(clips, (-1, t, grid[1], h, grid[2], w * channels))  # (batch * grid_t, ...)
        x = ops.transpose(x, (0, 2, 4, 1, 3, 5))
        x = ops.reshape(x, (-1, t * h * w * channels))
        kernel = ops.reshape(self.projection.kernel, (t * h * w * channels, self.hidden_dim))
        x = linear(x, kernel, self.projection.bias)
        return ops.reshape(x, (-1, grid[0], grid[1], grid[2], self.hidden_dim))

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        out = [input_shape[0]]
        for axis, p in zip((1, 2, 3), self.patch_size):
            out.append(None if input_shape[axis] is None else input_shape[axis] // p)
        return tuple(out) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim, "patch_size": self.patch_size})
        return config


@keras.saving.register_keras_serializable(package="vidtr_keras")
class FlattenPatches(keras.layers.Layer):
    """(batch, frames, grid_h, grid_w, d) -> (batch, frames, grid_h * grid_w, d), row-major over (h, w).

    Args:
        **kwargs: standard layer arguments (`name`, `dtype`, ...); the layer has no parameters.
    """

    def call(self, patches):
        check_rank(self.name, patches.shape, 5, "(batch, frames, grid_h, grid_w, dim)")
        shape = ops.shape(patches)
        return ops.reshape(patches, (shape[0], shape[1], shape[2] * shape[3], shape[4]))

    def compute_output_shape(self, input_shape):
        h, w = input_shape[2], input_shape[3]
        s = None if h is None or w is None else h * w
        return (input_shape[0], input_shape[1], s, input_shape[4])


class _GridParameterLayer(keras.layers.Layer):
    """Base of the layers whose parameters are laid out on the (frames, grid_h, grid_w) patch grid
    they were made for, and are linearly resized when called on another frame count or grid."""

    def __init__(self, layout="grid", num_frames=8, grid_size=(14, 14), **kwargs):
        super().__init__(**kwargs)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
        self.layout = layout
        self.num_frames = int(num_frames)
        self.grid_size = to_pair(grid_size, "grid_size")
        if self.num_frames <= 0 or min(self.grid_size) <= 0:
            raise ValueError(f"num_frames and grid_size must be positive, got {self.num_frames}, {self.grid_size}.")

    @property
    def num_patches(self):
        return self.grid_size[0] * self.grid_size[1]

    def _target(self, patches):
        check_rank(self.name, patches.shape, 5, "(batch, frames, grid_h, grid_w, dim)")
        dims = [static_dim(patches, a) for a in (1, 2, 3)]
        base = (self.num_frames,) + self.grid_size
        # Unknown (traced) sizes are taken to be the ones the parameters were made for.
        return tuple(base[i] if d is None else d for i, d in enumerate(dims))

    def get_config(self):
        config = super().get_config()
        config.update({"layout": self.layout, "num_frames": self.num_frames, "grid_size": self.grid_size})
        return config


@keras.saving.register_keras_serializable(package="vidtr_keras")
class ClassTokens(_GridParameterLayer):
    """Learned class tokens, placed around a patch grid.

    layout="grid" (VidTr-S/M/L): a row of temporal class tokens `cls_t` (one per spatial column, the
    first being the token that is classified) above the grid, and a column of spatial class tokens
    `cls_s` (one per frame) to its left: the output is the (T+1) x (S+1) token grid.
    layout="single" (vanilla, C-VidTr): one class token, returned on its own, (batch, 1, d).

    When called on another frame count or patch grid than `num_frames` x `grid_size`, `cls_s` is
    linearly resized over time and the spatial part of `cls_t` over the patch grid.

    Args:
        layout: "grid" or "single".
        num_frames: temporal tokens of the clips the tokens are made for.
        grid_size: int or (grid_h, grid_w), the patch grid they are made for.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        patches: (batch, frames, grid_h, grid_w, d).

    Returns:
        grid: (batch, frames + 1, grid_h * grid_w + 1, d); single: (batch, 1, d).
    """

    def build(self, input_shape):
        check_rank(self.name, input_shape, 5, "(batch, frames, grid_h, grid_w, dim)")
        dim = input_shape[-1]
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        if self.layout == "grid":
            self.temporal_class_tokens = self.add_weight(
                shape=(1, self.num_patches + 1, dim), initializer=init, name="temporal_class_tokens"
            )
            self.spatial_class_tokens = self.add_weight(
                shape=(self.num_frames, 1, dim), initializer=init, name="spatial_class_tokens"
            )
        else:
            self.class_token = self.add_weight(shape=(1, 1, dim), initializer=init, name="class_token")

    def call(self, patches):
        t, h, w = self._target(patches)
        shape = ops.shape(patches)
        batch, dim = shape[0], shape[-1]
        if self.layout == "single":
            return ops.broadcast_to(ops.cast(self.class_token, patches.dtype), (batch, 1, dim))
        cls_t = ops.cast(self.temporal_class_tokens, patches.dtype)
        cls_s = ops.cast(self.spatial_class_tokens, patches.dtype)
        gh, gw = self.grid_size
        if (h, w) != (gh, gw):
            corner = cls_t[:, :1]
            spatial = ops.reshape(cls_t[0, 1:], (gh, gw, -1))
            spatial = ops.reshape(resize_axes(spatial, (gh, gw), (h, w)), (1, h * w, -1))
            cls_t = ops.concatenate([corner, spatial], axis=1)
        if t != self.num_frames:
            cls_s = resize_axes(cls_s, (self.num_frames,), (t,))
        flat = ops.reshape(patches, (batch, shape[1], shape[2] * shape[3], dim))
        row0 = ops.broadcast_to(cls_t, (batch, 1, h * w + 1, dim))
        col0 = ops.broadcast_to(cls_s[None], (batch, t, 1, dim))
        return ops.concatenate([row0, ops.concatenate([col0, flat], axis=2)], axis=1)

    def compute_output_shape(self, input_shape):
        if self.layout == "single":
            return (input_shape[0], 1, input_shape[-1])
        t, h, w = input_shape[1], input_shape[2], input_shape[3]
        s = None if h is None or w is None else h * w + 1
        return (input_shape[0], None if t is None else t + 1, s, input_shape[-1])


@keras.saving.register_keras_serializable(package="vidtr_keras")
class PositionEmbedding(_GridParameterLayer):
    """Learned position embedding of the whole token set, as in the official code.

    layout="grid": one vector per token of the (T+1) x (S+1) grid, stored flat as
    (1, (T+1)(S+1), d), row-major over (time row, spatial column). layout="single": (1, 1 + T*S, d),
    the class token's first, then frame-major patches.

    Called on another frame count or patch grid, the patch part is resized (multi-)linearly over
    (frames, grid_h, grid_w), the class-token row over the grid and the class-token column over time;
    the class token's own vector is kept. This lets a model made for 8 frames at 224 px run 16 frames
    or 320 px (the official code cannot).

    Args:
        layout: "grid" or "single".
        num_frames: temporal tokens of the clips the embedding is made for.
        grid_size: int or (grid_h, grid_w), the patch grid it is made for.
        initializer_stddev: std of the truncated-normal initialisation; 0.02 (ViT's, and the
            official code's) by default. Tokens are LayerNorm-ed to unit scale, so at 0.02 the
            embedding is about 1/50 of the signal; a larger value makes an untrained separable model
            far more sensitive to frame order (see `BackboneConfig.position_embedding_stddev`).
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        patches: (batch, frames, grid_h, grid_w, d); only its shape is used.

    Returns:
        grid: (1, frames + 1, grid_h * grid_w + 1, d); single: (1, 1 + frames * grid_h * grid_w, d).
    """

    def __init__(self, layout="grid", num_frames=8, grid_size=(14, 14), initializer_stddev=0.02, **kwargs):
        super().__init__(layout=layout, num_frames=num_frames, grid_size=grid_size, **kwargs)
        stddev = float(initializer_stddev)
        if not stddev > 0 or stddev == float("inf"):
            raise ValueError(f"initializer_stddev must be a positive finite number, got {initializer_stddev!r}.")
        self.initializer_stddev = stddev

    def build(self, input_shape):
        check_rank(self.name, input_shape, 5, "(batch, frames, grid_h, grid_w, dim)")
        dim = input_shape[-1]
        if self.layout == "grid":
            length = (self.num_frames + 1) * (self.num_patches + 1)
        else:
            length = 1 + self.num_frames * self.num_patches
        self.embeddings = self.add_weight(
            shape=(1, length, dim),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_stddev),
            name="embeddings",
        )

    def call(self, patches):
        t, h, w = self._target(patches)
        t0, (gh, gw) = self.num_frames, self.grid_size
        pos = ops.cast(self.embeddings, patches.dtype)[0]
        dim = pos.shape[-1]
        if self.layout == "single":
            if (t, h, w) != (t0, gh, gw):
                body = ops.reshape(pos[1:], (t0, gh, gw, dim))
                body = ops.reshape(resize_axes(body, (t0, gh, gw), (t, h, w)), (t * h * w, dim))
                pos = ops.concatenate([pos[:1], body], axis=0)
            return pos[None]
        grid = ops.reshape(pos, (t0 + 1, gh * gw + 1, dim))
        if (t, h, w) != (t0, gh, gw):
            corner = grid[:1, :1]
            top = ops.reshape(grid[0, 1:], (gh, gw, dim))
            top = ops.reshape(resize_axes(top, (gh, gw), (h, w)), (1, h * w, dim))
            left = resize_axes(grid[1:, :1], (t0,), (t,))
            body = ops.reshape(grid[1:, 1:], (t0, gh, gw, dim))
            body = ops.reshape(resize_axes(body, (t0, gh, gw), (t, h, w)), (t, h * w, dim))
            grid = ops.concatenate(
                [ops.concatenate([corner, top], axis=1), ops.concatenate([left, body], axis=1)],
                axis=0,
            )
        return grid[None]

    def compute_output_shape(self, input_shape):
        t, h, w, d = input_shape[1], input_shape[2], input_shape[3], input_shape[4]
        if self.layout == "single":
            return (1, None if None in (t, h, w) else 1 + t * h * w, d)
        return (1, None if t is None else t + 1, None if None in (h, w) else h * w + 1, d)

    def get_config(self):
        config = super().get_config()
        config.update({"initializer_stddev": self.initializer_stddev})
        return config


@keras.saving.register_keras_serializable(package="vidtr_keras")
class JoinClassToken(keras.layers.Layer):
    """[class token, frame-major patches]: (batch, 1, d) and (batch, T, S, d) -> (batch, 1 + T*S, d),
    the single-class-token sequence of the vanilla model and of C-VidTr's joint layers.

    Args:
        **kwargs: standard layer arguments (`name`, `dtype`, ...); the layer has no parameters.

    Call arguments:
        class_token: (batch, 1, d).
        patches: (batch, T, S, d) token grid.
    """

    def call(self, class_token, patches):
        check_rank(self.name, patches.shape, 4, "(batch, frames, patches, dim)")
        shape = ops.shape(patches)
        flat = ops.reshape(patches, (shape[0], shape[1] * shape[2], shape[3]))
        return ops.concatenate([ops.cast(class_token, flat.dtype), flat], axis=1)

    def compute_output_shape(self, class_token_shape, patches_shape):
        t, s = patches_shape[1], patches_shape[2]
        return (patches_shape[0], None if t is None or s is None else 1 + t * s, patches_shape[3])


READOUTS = ("first", "corner", "frame_mean")


@keras.saving.register_keras_serializable(package="vidtr_keras")
class ClassTokenReadout(keras.layers.Layer):
    """Picks the feature that is classified.

    mode="first": token 0 of a (batch, N, d) sequence (vanilla, C-VidTr);
    mode="corner": token (0, 0) of a (batch, T+1, S+1, d) grid (VidTr-S/M/L);
    mode="frame_mean": the mean over frames of the spatial class tokens (column 0, rows 1..T) of the
    grid, for the spatial-only ablation, whose corner token never sees a patch.

    Args:
        mode: "first", "corner" or "frame_mean".
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        tokens: (batch, N, d) for "first", (batch, T+1, S+1, d) for the others.

    Returns:
        (batch, d).
    """

    def __init__(self, mode="first", **kwargs):
        super().__init__(**kwargs)
        if mode not in READOUTS:
            raise ValueError(f"mode must be one of {READOUTS}, got {mode!r}.")
        self.mode = mode

    def call(self, tokens):
        if self.mode == "first":
            check_rank(self.name, tokens.shape, 3, "(batch, tokens, dim)")
            return tokens[:, 0]
        check_rank(self.name, tokens.shape, 4, "(batch, frames + 1, patches + 1, dim)")
        if self.mode == "corner":
            return tokens[:, 0, 0]
        return ops.mean(tokens[:, 1:, 0], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
