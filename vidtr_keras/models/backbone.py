"""VidTrBackbone: clip (batch, T, H, W, C) -> the normalised class-token feature (batch, d)."""

import keras

from vidtr_keras.layers.embedding import (
    ClassTokenReadout,
    ClassTokens,
    FlattenPatches,
    JoinClassToken,
    PositionEmbedding,
    TubeletEmbedding,
)
from vidtr_keras.layers.encoder import VidTrEncoderBlock
from vidtr_keras.models.config import BackboneConfig


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


@keras.saving.register_keras_serializable(package="vidtr_keras")
class VidTrBackbone(keras.Model):
    """The VidTr family of video transformers as one functional backbone.

    Clip (batch, frames, height, width, channels) -> tubelet embedding -> tokens with class token(s)
    and a learned position embedding -> `num_layers` pre-LN encoder blocks -> final LayerNorm -> the
    class-token feature (batch, hidden_dim). Frame count and resolution are free at call time: the
    position embedding and class tokens are resized from the `num_frames` x `image_size` they were
    made for.

    The variants (VidTr paper, sections 3.1-3.3, and the released gluonmm code):
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
        position_embedding_stddev: std of the position embedding's initialisation (0.02, ViT's and
            the official code's); larger values make an untrained separable model more sensitive
            to frame order (`BackboneConfig.position_embedding_stddev`).
        mlp_activation: "relu" (released code) or "gelu" (ViT).
        dropout, attention_dropout: dropout rates.
        layer_norm_epsilon: LayerNorm epsilon.
        drop_path_rate: stochastic depth for fine-tuning (timm's `drop_path_rate`): the last
            block's drop probability, rising linearly from 0 over the blocks
            (`BackboneConfig.drop_path_rates`); only in training; 0 (default) is the paper's model.
        remat: rematerialise every encoder block in training (`VidTrEncoderBlock(remat=True)`):
            activation memory of about one block instead of all of them, for about a third more
            compute; same results. A training-time option, saved with the config. On JAX on the
            CPU it needs the XLA flag that `import vidtr_keras` sets (`vidtr_keras.backends.xla_cpu`),
            without which XLA merges the recomputation back into the forward pass; measured in
            results/benchmark.md.
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
        position_embedding_stddev=0.02,
        mlp_activation="relu",
        dropout=0.1,
        attention_dropout=0.1,
        layer_norm_epsilon=1e-5,
        drop_path_rate=0.0,
        remat=False,
        dtype=None,
        **kwargs,
    ):
        # Defaults that depend on other arguments, and every check, live in BackboneConfig (shared
        # with the FLOP and memory models of vidtr_keras.complexity).
        config = BackboneConfig(
            num_frames=num_frames,
            image_size=image_size,
            patch_size=patch_size,
            num_channels=num_channels,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            attention=attention,
            class_token_layout=class_token_layout,
            pool_layers=pool_layers,
            frames_dropped=frames_dropped,
            pooling=pooling,
            second_softmax=second_softmax,
            joint_from_layer=joint_from_layer,
            position_embedding_every_layer=position_embedding_every_layer,
            position_embedding_stddev=position_embedding_stddev,
            mlp_activation=mlp_activation,
            dropout=dropout,
            attention_dropout=attention_dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            drop_path_rate=drop_path_rate,
        )
        image_size, patch_size = config.image_size, config.patch_size
        class_token_layout, joint_from_layer = config.class_token_layout, config.joint_from_layer
        pool_layers, frames_dropped = config.pool_layers, config.frames_dropped
        token_frames, grid_size, plan = config.token_frames, config.grid_size, config.layer_plan
        drop_path_rates = config.drop_path_rates()

        # === Functional Model ===
        clips = keras.Input(shape=(None, None, None, num_channels), name="clips")
        patches = TubeletEmbedding(hidden_dim, patch_size, dtype=dtype, name="patch_embedding")(clips)
        pos_layout = class_token_layout
        pos = PositionEmbedding(
            pos_layout,
            token_frames,
            grid_size,
            initializer_stddev=config.position_embedding_stddev,
            dtype=dtype,
            name="position_embedding",
        )(patches)
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
                drop_path=drop_path_rates[i],
                remat=remat,
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
        if not self.trainable:  # a frozen backbone restored from its config (`trainable`: False): Keras sets
            for layer in self.layers:  # the model's flag before it tracks the layers, so freeze them here
                layer.trainable = False  # (`self.trainable = False` again is skipped as unchanged on TF)

        # === Config ===
        self.backbone_config = config  # the resolved BackboneConfig; its fields as attributes below
        for field, value in config.backbone_kwargs().items():
            setattr(self, field, value)
        self.grid_size = grid_size
        self.token_frames = token_frames
        self.layer_plan = plan
        self.remat = bool(remat)
        # A functional model reports the float32 policy whatever its layers use; the policy given
        # (e.g. "mixed_bfloat16") is what its layers run with and what a saved model must restore.
        self.layers_dtype_policy = keras.dtype_policies.get(dtype) if dtype is not None else self.dtype_policy

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

    def call_with_attention_scores(self, clips, training=False):
        """Runs the backbone eagerly and also returns the attention probabilities of every layer.

        The default forward pass keeps no attention maps; this runs the same functional graph once,
        calling each `VidTrEncoderBlock` with `return_attention_scores=True`.
        `vidtr_keras.apps.explain.attention_maps` / `attention_rollout` build on it.

        Args:
            clips: (batch, frames, height, width, channels).
            training: dropout switch (the probabilities are returned before dropout either way).

        Returns:
            (features, scores): the usual (batch, hidden_dim) features and a list with one dict per
            encoder layer, in order (keys as in `VidTrEncoderBlock`: "joint", or "temporal",
            "spatial" and, in a std-topK pooling layer, "temporal_before_pooling" and "selection").
        """
        check_clips(clips, self.num_channels, self.name)
        clips = keras.ops.convert_to_tensor(clips, dtype=self.inputs[0].dtype)
        captured = []

        def operation_fn(op):
            if not isinstance(op, VidTrEncoderBlock):
                return op

            def call(*args, **kwargs):
                out, scores = op(*args, training=training, return_attention_scores=True, **kwargs)
                captured.append(scores)
                return out

            return call

        # The functional graph, run with blocks that also hand out their attention (Keras' own
        # `Functional.call` runs this same method, with an `operation_fn` adding the call context).
        features = self._run_through_graph([clips], operation_fn=operation_fn)
        if len(captured) != self.num_layers:
            raise RuntimeError(
                f"{self.name}: captured the attention of {len(captured)} encoder blocks, expected {self.num_layers}."
            )
        return features, captured

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
            "position_embedding_stddev": self.position_embedding_stddev,
            "mlp_activation": self.mlp_activation,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "drop_path_rate": self.drop_path_rate,
            "remat": self.remat,
            "dtype": keras.dtype_policies.serialize(self.layers_dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
