"""VidTrBackbone: clip (batch, T, H, W, C) -> the normalised class-token feature (batch, d)."""

import keras

from vidtr_keras.layers.embedding import (
    ClassTokenReadout,
    ClassTokens,
    FlattenPatches,
    JoinClassToken,
    PositionEmbedding,
    TubeletEmbedding,
    _pair,
    _triple,
)
from vidtr_keras.layers.encoder import ATTENTION_TYPES, POOLING_TYPES, VidTrEncoderBlock


def check_clips(inputs, channels, name):
    """A clear error for clips that are not (batch, frames, height, width, channels)."""
    shape = getattr(inputs, "shape", None)
    if shape is None or isinstance(inputs, dict):
        return
    shape = tuple(shape)
    layout = f"(batch, frames, height, width, {channels}) clips, channels last"
    if len(shape) != 5:
        raise ValueError(f"{name} expects {layout}; got shape {shape} (rank {len(shape)}).")
    if shape[-1] is not None and shape[-1] != channels:
        hint = ""
        if shape[1] == channels:
            hint = " It looks channels-first (batch, channels, frames, height, width): transpose it to (0, 2, 3, 4, 1)."
        raise ValueError(f"{name} expects {layout}; got {shape[-1]} channels in shape {shape}.{hint}")


def layer_plan(
    num_layers,
    attention,
    class_token_layout,
    pool_layers,
    frames_dropped,
    joint_from_layer,
):
    """The attention type of every layer and the frames it drops, from a backbone config."""
    plan = []
    for i in range(num_layers):
        if attention == "joint" or (joint_from_layer is not None and i >= joint_from_layer):
            kind = "joint"
        else:
            kind = attention
        plan.append((kind, 0))
    for layer, dropped in zip(pool_layers, frames_dropped):
        plan[layer] = (plan[layer][0], dropped)
    return plan


@keras.saving.register_keras_serializable(package="vidtr_keras")
class VidTrBackbone(keras.Model):
    """The VidTr family of video transformers as one functional backbone.

    Clip (batch, frames, height, width, channels) -> tubelet embedding -> tokens with class token(s)
    and a learned position embedding -> `num_layers` pre-LN encoder blocks -> final LayerNorm -> the
    class-token feature (batch, hidden_dim). Frame count and resolution are free at call time: the
    position embedding and class tokens are resized from the `num_frames` x `image_size` they were
    made for.

    The variants (PAPER.md section 1):
    - vanilla: `attention="joint"` (one class token; position embedding on queries and keys only).
    - VidTr-S/M/L: `attention="temporal_spatial"` with the (T+1) x (S+1) class-token grid.
    - C-VidTr: separable attention with `class_token_layout="single"` (the class token bypasses it),
      std-topK pooling at `pool_layers` dropping `frames_dropped` frames, and joint attention from the
      layer after the last pooling layer (`joint_from_layer`).
    - ablations: `attention` "spatial_temporal" / "spatial" (Table 4b), `patch_size` (Table 4a),
      `pooling` "average" / "conv" (Table 4d), any pooling schedule (Tables 4e, 4f).

    Args:
        num_frames: frames of the clips the parameters are made for.
        image_size: int or (height, width) those clips have.
        patch_size: int or (t, h, w) tubelet size; (1, 16, 16) in the paper.
        num_channels: input channels.
        hidden_dim, num_layers, num_heads, mlp_dim: transformer size (ViT-B: 768, 12, 12, 3072).
        attention: "joint", "temporal_spatial", "spatial_temporal", "spatial" or "temporal".
        class_token_layout: "grid" or "single"; default "single" for joint attention or when pooling,
            else "grid".
        pool_layers: 0-based layers that pool frames.
        frames_dropped: frames dropped at each of those layers.
        pooling: "std_topk" (C-VidTr), "average" or "conv".
        second_softmax: std-topK's second softmax (official code) or the paper's single softmax.
        joint_from_layer: first layer with joint attention (single layout); default: the layer after the
            last pooling layer for a single-layout separable model, none otherwise.
        position_embedding_every_layer: add the position embedding in every layer instead of only the
            first (the official code does this exactly when temporal_size == 16).
        mlp_activation: "relu" (released code) or "gelu" (ViT).
        dropout, attention_dropout: dropout rates.
        layer_norm_epsilon: LayerNorm epsilon.
    """

    def __init__(
        self,
        num_frames=8,
        image_size=224,
        patch_size=(1, 16, 16),
        num_channels=3,
        hidden_dim=768,
        num_layers=12,
        num_heads=12,
        mlp_dim=3072,
        attention="temporal_spatial",
        class_token_layout=None,
        pool_layers=(),
        frames_dropped=(),
        pooling="std_topk",
        second_softmax=True,
        joint_from_layer=None,
        position_embedding_every_layer=False,
        mlp_activation="relu",
        dropout=0.1,
        attention_dropout=0.1,
        layer_norm_epsilon=1e-5,
        dtype=None,
        **kwargs,
    ):
        image_size = _pair(image_size, "image_size")
        patch_size = _triple(patch_size, "patch_size")
        pool_layers = tuple(int(i) for i in pool_layers)
        frames_dropped = tuple(int(k) for k in frames_dropped)
        if attention not in ATTENTION_TYPES:
            raise ValueError(f"attention must be one of {ATTENTION_TYPES}, got {attention!r}.")
        if pooling not in POOLING_TYPES:
            raise ValueError(f"pooling must be one of {POOLING_TYPES}, got {pooling!r}.")
        if class_token_layout is None:
            class_token_layout = "single" if attention == "joint" or pool_layers else "grid"
        if class_token_layout not in ("grid", "single"):
            raise ValueError(f"class_token_layout must be 'grid' or 'single', got {class_token_layout!r}.")
        if attention == "joint" and class_token_layout == "grid":
            raise ValueError("The class-token grid needs separable attention; joint attention uses 'single'.")
        if hidden_dim % num_heads:
            raise ValueError(
                f"num_heads={num_heads} does not divide hidden_dim={hidden_dim}."
            )
        for label, size, p in (
            ("num_frames", num_frames, patch_size[0]),
            ("image height", image_size[0], patch_size[1]),
            ("image width", image_size[1], patch_size[2]),
        ):
            if size % p:
                raise ValueError(f"{label}={size} is not divisible by the patch size {p} ({patch_size}).")
        if len(pool_layers) != len(frames_dropped):
            raise ValueError(
                f"pool_layers {pool_layers} and frames_dropped {frames_dropped} must have the same length."
            )
        if len(set(pool_layers)) != len(pool_layers) or list(pool_layers) != sorted(pool_layers):
            raise ValueError(f"pool_layers must be strictly increasing, got {pool_layers}.")
        if pool_layers and not 0 <= pool_layers[-1] < num_layers:
            raise ValueError(f"pool_layers {pool_layers} must lie in [0, {num_layers}).")
        if any(k <= 0 for k in frames_dropped):
            raise ValueError(f"frames_dropped must be positive, got {frames_dropped}.")
        token_frames = num_frames // patch_size[0]
        if sum(frames_dropped) >= token_frames:
            raise ValueError(
                f"The pooling schedule would drop every frame: {sum(frames_dropped)} of {token_frames} "
                f"temporal tokens dropped (pool_layers={pool_layers}, frames_dropped={frames_dropped})."
            )
        if attention == "spatial" and pool_layers:
            raise ValueError("A spatial-only model has no temporal attention to pool.")
        if class_token_layout == "single" and attention != "joint" and joint_from_layer is None:
            if not pool_layers:
                raise ValueError(
                    "A single class token bypasses separable attention, so some layers must be joint: "
                    "give joint_from_layer (or pooling layers, after which attention is joint)."
                )
            joint_from_layer = pool_layers[-1] + 1
        if joint_from_layer is not None and pool_layers and pool_layers[-1] >= joint_from_layer:
            raise ValueError(
                f"Pooling layers {pool_layers} must come before the first joint layer {joint_from_layer}."
            )
        if position_embedding_every_layer and pool_layers:
            raise ValueError("position_embedding_every_layer cannot be combined with frame pooling.")

        grid_size = (image_size[0] // patch_size[1], image_size[1] // patch_size[2])
        plan = layer_plan(num_layers, attention, class_token_layout, pool_layers, frames_dropped, joint_from_layer)

        # === Functional Model ===
        clips = keras.Input(shape=(None, None, None, num_channels), name="clips")
        patches = TubeletEmbedding(hidden_dim, patch_size, dtype=dtype, name="patch_embedding")(clips)
        pos_layout = class_token_layout
        pos = PositionEmbedding(pos_layout, token_frames, grid_size, dtype=dtype, name="position_embedding")(
            patches
        )
        class_tokens = ClassTokens(class_token_layout, token_frames, grid_size, dtype=dtype, name="class_tokens")
        cls = None
        if class_token_layout == "grid":
            x = class_tokens(patches)
        else:
            cls = class_tokens(patches)
            x = FlattenPatches(dtype=dtype, name="flatten_patches")(patches)
        rows = token_frames + (1 if class_token_layout == "grid" else 0)
        for i, (kind, dropped) in enumerate(plan):
            if kind == "joint" and cls is not None:
                x = JoinClassToken(dtype=dtype, name="join_class_token")(cls, x)
                cls = None
            block = VidTrEncoderBlock(
                num_heads,
                mlp_dim,
                attention=kind,
                frames_dropped=dropped,
                pooling=pooling,
                input_frames=rows if kind != "joint" else None,
                second_softmax=second_softmax,
                keep_first=class_token_layout == "grid",
                position_embedding_target="qk" if attention == "joint" else "qkv",
                mlp_activation=mlp_activation,
                dropout=dropout,
                attention_dropout=attention_dropout,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=dtype,
                name=f"encoder_block_{i}",
            )
            use_pos = i == 0 or position_embedding_every_layer
            if cls is not None:
                x, cls = block(x, position_embedding=pos if use_pos else None, class_token=cls)
            else:
                x = block(x, position_embedding=pos if use_pos else None)
            rows -= dropped
        if cls is not None:  # the class token only bypassed separable layers: read it out anyway
            x = JoinClassToken(dtype=dtype, name="join_class_token")(cls, x)
        x = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm")(x)
        if class_token_layout == "single":
            mode = "first"
        else:
            mode = "frame_mean" if attention == "spatial" else "corner"
        features = ClassTokenReadout(mode, dtype=dtype, name="class_token_readout")(x)
        super().__init__(inputs=clips, outputs=features, dtype=dtype, **kwargs)

        # === Config ===
        self.num_frames = int(num_frames)
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = int(num_channels)
        self.hidden_dim = int(hidden_dim)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.mlp_dim = int(mlp_dim)
        self.attention = attention
        self.class_token_layout = class_token_layout
        self.pool_layers = pool_layers
        self.frames_dropped = frames_dropped
        self.pooling = pooling
        self.second_softmax = bool(second_softmax)
        self.joint_from_layer = joint_from_layer
        self.position_embedding_every_layer = bool(position_embedding_every_layer)
        self.mlp_activation = mlp_activation
        self.dropout = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.grid_size = grid_size
        self.token_frames = token_frames
        self.layer_plan = plan

    def __call__(self, inputs, *args, **kwargs):
        check_clips(inputs, self.num_channels, self.name)
        return super().__call__(inputs, *args, **kwargs)

    def frames_after_each_layer(self, frames=None):
        """Temporal tokens left after each encoder layer for a clip of `frames` frames."""
        t = (frames or self.num_frames) // self.patch_size[0]
        out = []
        for _, dropped in self.layer_plan:
            t -= dropped
            out.append(t)
        return out

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_frames": self.num_frames,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_channels": self.num_channels,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "attention": self.attention,
            "class_token_layout": self.class_token_layout,
            "pool_layers": self.pool_layers,
            "frames_dropped": self.frames_dropped,
            "pooling": self.pooling,
            "second_softmax": self.second_softmax,
            "joint_from_layer": self.joint_from_layer,
            "position_embedding_every_layer": self.position_embedding_every_layer,
            "mlp_activation": self.mlp_activation,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
