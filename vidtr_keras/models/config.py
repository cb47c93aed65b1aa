"""The one resolved VidTr backbone configuration: defaults, derived values and every check.

`VidTrBackbone` builds itself from a `BackboneConfig`, and the analytic FLOP and memory models
(`vidtr_keras.complexity`) count from one, so a configuration the model rejects is rejected by the
FLOP model with the same message, and both see the same defaults (class-token layout, first joint
layer).

Example:
>>> config = BackboneConfig(num_frames=8, pool_layers=(1, 3, 5), frames_dropped=(2, 2, 2))
>>> config.class_token_layout, config.joint_from_layer
('single', 6)
>>> config.frames_after_each_layer()[:6]
[8, 6, 6, 4, 4, 2]
"""

import dataclasses
import numbers

from vidtr_keras.layers.encoder import ATTENTION_TYPES, POOLING_TYPES
from vidtr_keras.layers.utils import to_pair, to_triple

CLASS_TOKEN_LAYOUTS = ("grid", "single")


def layer_plan(num_layers, attention, pool_layers, frames_dropped, joint_from_layer):
    """[(attention kind, frames dropped)] for every encoder layer.

    A layer is joint when the model is (`attention="joint"`) or from `joint_from_layer` on (C-VidTr:
    the layer after the last pooling layer); otherwise it runs the separable order `attention`.
    """
    plan = []
    for i in range(num_layers):
        joint = attention == "joint" or (joint_from_layer is not None and i >= joint_from_layer)
        plan.append(["joint" if joint else attention, 0])
    for layer, dropped in zip(pool_layers, frames_dropped):
        plan[layer][1] = dropped
    return [tuple(p) for p in plan]


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """A checked VidTr backbone configuration; the arguments are those of `VidTrBackbone`.

    Construction normalises the values (`image_size` to (h, w), `patch_size` to (t, h, w), tuples of
    ints), fills the defaults that depend on other arguments (`class_token_layout`, `joint_from_layer`)
    and raises a ValueError naming the argument for any inconsistent combination.

    Args:
        num_frames: frames of the clips the parameters are made for.
        image_size: int or (height, width) of those clips.
        patch_size: int or (t, h, w) tubelet size; (1, 16, 16) in the paper.
        num_channels: input channels.
        hidden_dim: token width (768 for ViT-B).
        num_layers: encoder layers (12 for ViT-B).
        num_heads: attention heads (12 for ViT-B); must divide `hidden_dim`.
        mlp_dim: hidden width of the MLP (3072 for ViT-B).
        attention: "joint", "temporal_spatial", "spatial_temporal", "spatial" or "temporal".
        class_token_layout: "grid" ((T+1) x (S+1) class tokens, VidTr-S/M/L) or "single" (one class
            token); None: "single" for joint attention or when pooling, else "grid".
        pool_layers: 0-based layers that pool frames, strictly increasing.
        frames_dropped: frames dropped at each of those layers.
        pooling: "std_topk" (C-VidTr), "average" or "conv" (Table 4d).
        second_softmax: std-topK's second softmax over the kept rows (the official code) or the
            paper's single softmax.
        joint_from_layer: first layer with joint attention; None: the layer after the last pooling
            layer for a single-class-token separable model (C-VidTr), no joint layer otherwise.
        position_embedding_every_layer: add the position embedding in every layer, not only the first
            (the official code does so exactly when its temporal_size is 16).
        position_embedding_stddev: std of the position embedding's truncated-normal initialisation;
            0.02 (ViT's and the official code's, the default). At 0.02 an untrained model in the
            official temporal-spatial order barely tells frames apart (the embedding is about 1/50
            of the LayerNorm-ed tokens); 0.5 raises that sensitivity many times over, though on
            the procedural direction task it did not make that order learn (results/learning.md,
            `python -m reproduce learning`). Only the initialisation changes: loaded weights
            replace it.
        mlp_activation: "relu" (the released code), "gelu" (ViT) or any Keras activation name.
        dropout: dropout rate after the attention and in the MLP.
        attention_dropout: dropout rate on the attention probabilities.
        layer_norm_epsilon: LayerNorm epsilon (1e-5, PyTorch's default, in the released code).
        drop_path_rate: stochastic depth (Huang et al. 2016), the fine-tuning regulariser of
            DeiT, timm's ViT and VideoMAE (not in the paper or the released code): the drop
            probability of the last encoder block's attention and MLP branches, in [0, 1). The
            per-block rates rise linearly from 0 over the blocks (`drop_path_rates`). 0, the
            default, is the paper's model exactly (no DropPath layers, no extra random draws).
    """

    num_frames: int = 8
    image_size: tuple = 224
    patch_size: tuple = (1, 16, 16)
    num_channels: int = 3
    hidden_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    mlp_dim: int = 3072
    attention: str = "temporal_spatial"
    class_token_layout: str = None
    pool_layers: tuple = ()
    frames_dropped: tuple = ()
    pooling: str = "std_topk"
    second_softmax: bool = True
    joint_from_layer: int = None
    position_embedding_every_layer: bool = False
    position_embedding_stddev: float = 0.02
    mlp_activation: str = "relu"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_epsilon: float = 1e-5
    drop_path_rate: float = 0.0

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("image_size", to_pair(self.image_size, "image_size"))
        put("patch_size", to_triple(self.patch_size, "patch_size"))
        for name in ("num_frames", "num_channels", "hidden_dim", "num_layers", "num_heads", "mlp_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or int(value) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
            put(name, int(value))
        put("pool_layers", tuple(int(i) for i in self.pool_layers))
        put("frames_dropped", tuple(int(k) for k in self.frames_dropped))
        put("second_softmax", bool(self.second_softmax))
        put("position_embedding_every_layer", bool(self.position_embedding_every_layer))
        for name in ("dropout", "attention_dropout"):
            value = float(getattr(self, name))
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}.")
            put(name, value)
        stddev = self.position_embedding_stddev
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or not 0 < float(stddev) < float("inf"):
            raise ValueError(f"position_embedding_stddev must be a positive number, got {stddev!r}.")
        put("position_embedding_stddev", float(stddev))
        rate = self.drop_path_rate
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"drop_path_rate must be a probability in [0, 1), got {rate!r}.")
        put("drop_path_rate", float(rate))
        put("layer_norm_epsilon", float(self.layer_norm_epsilon))
        if self.layer_norm_epsilon <= 0:
            raise ValueError(f"layer_norm_epsilon must be positive, got {self.layer_norm_epsilon}.")
        if self.attention not in ATTENTION_TYPES:
            raise ValueError(f"attention must be one of {ATTENTION_TYPES}, got {self.attention!r}.")
        if self.pooling not in POOLING_TYPES:
            raise ValueError(f"pooling must be one of {POOLING_TYPES}, got {self.pooling!r}.")
        if self.class_token_layout is None:
            put("class_token_layout", "single" if self.attention == "joint" or self.pool_layers else "grid")
        if self.class_token_layout not in CLASS_TOKEN_LAYOUTS:
            raise ValueError(
                f"class_token_layout must be one of {CLASS_TOKEN_LAYOUTS}, got {self.class_token_layout!r}."
            )
        if self.attention == "joint" and self.class_token_layout == "grid":
            raise ValueError(
                "class_token_layout='grid': the class-token grid needs separable attention; "
                "joint attention uses 'single'."
            )
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} does not divide hidden_dim={self.hidden_dim}.")
        for label, size, p in (
            ("num_frames", self.num_frames, self.patch_size[0]),
            ("image height", self.image_size[0], self.patch_size[1]),
            ("image width", self.image_size[1], self.patch_size[2]),
        ):
            if size % p:
                raise ValueError(f"{label}={size} is not divisible by the patch size {p} ({self.patch_size}).")
        self._check_pooling()

    def _check_pooling(self):
        pool_layers, frames_dropped = self.pool_layers, self.frames_dropped
        if len(pool_layers) != len(frames_dropped):
            raise ValueError(
                f"pool_layers {pool_layers} and frames_dropped {frames_dropped} must have the same length."
            )
        if list(pool_layers) != sorted(set(pool_layers)):
            raise ValueError(f"pool_layers must be strictly increasing, got {pool_layers}.")
        if pool_layers and not (0 <= pool_layers[0] and pool_layers[-1] < self.num_layers):
            raise ValueError(f"pool_layers {pool_layers} must lie in [0, num_layers={self.num_layers}).")
        if any(k <= 0 for k in frames_dropped):
            raise ValueError(f"frames_dropped must be positive, got {frames_dropped}.")
        if sum(frames_dropped) >= self.token_frames:
            raise ValueError(
                f"The pooling schedule would drop every frame: {sum(frames_dropped)} of {self.token_frames} "
                f"temporal tokens dropped (pool_layers={pool_layers}, frames_dropped={frames_dropped})."
            )
        if self.attention == "spatial" and pool_layers:
            raise ValueError(
                "A spatial-only model has no temporal attention to pool (attention='spatial' with pool_layers)."
            )
        if self.class_token_layout == "single" and self.attention != "joint" and self.joint_from_layer is None:
            if not pool_layers:
                raise ValueError(
                    "A single class token bypasses separable attention, so some layers must be joint: "
                    "give joint_from_layer (or pool_layers, after which attention is joint)."
                )
            object.__setattr__(self, "joint_from_layer", pool_layers[-1] + 1)
        if self.joint_from_layer is not None:
            object.__setattr__(self, "joint_from_layer", int(self.joint_from_layer))
            if self.joint_from_layer < 0:
                raise ValueError(f"joint_from_layer must be >= 0, got {self.joint_from_layer}.")
            if pool_layers and pool_layers[-1] >= self.joint_from_layer:
                raise ValueError(
                    f"Pooling layers {pool_layers} must come before the first joint layer "
                    f"(joint_from_layer={self.joint_from_layer})."
                )
        if self.position_embedding_every_layer and pool_layers:
            raise ValueError("position_embedding_every_layer cannot be combined with frame pooling (pool_layers).")

    # === Derived values ===

    @property
    def token_frames(self):
        """Temporal tokens of a `num_frames` clip (frames / tubelet length)."""
        return self.num_frames // self.patch_size[0]

    @property
    def grid_size(self):
        """(rows, columns) of the patch grid of one frame."""
        return (self.image_size[0] // self.patch_size[1], self.image_size[1] // self.patch_size[2])

    @property
    def patches_per_frame(self):
        """S, patch tokens per temporal token."""
        return self.grid_size[0] * self.grid_size[1]

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    @property
    def layer_plan(self):
        """[(attention kind, frames dropped)] for every encoder layer."""
        return layer_plan(self.num_layers, self.attention, self.pool_layers, self.frames_dropped, self.joint_from_layer)

    def drop_path_rates(self):
        """The stochastic-depth rate of every encoder block: linear from 0 (first block) to
        `drop_path_rate` (last block), timm's rule (`[x.item() for x in torch.linspace(0, rate,
        depth)]` in its VisionTransformer, as DeiT and VideoMAE use it), in float64; one block: [0.0]."""
        n, rate = self.num_layers, self.drop_path_rate
        return [rate * (i / (n - 1)) if n > 1 else 0.0 for i in range(n)]

    def frames_after_each_layer(self, frames=None):
        """Temporal tokens left after each encoder layer for a clip of `frames` frames."""
        t = (frames or self.num_frames) // self.patch_size[0]
        out = []
        for _, dropped in self.layer_plan:
            t -= dropped
            out.append(t)
        return out

    def backbone_kwargs(self):
        """The keyword arguments of `VidTrBackbone` (every field of the config)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(BackboneConfig)}


__all__ = ["BackboneConfig", "CLASS_TOKEN_LAYOUTS", "layer_plan"]
