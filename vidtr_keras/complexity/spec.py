"""The shape of a VidTr model as plain numbers: what the FLOP and memory models count from.

`model_spec` accepts a preset name, a preset entry or backbone config dict, a `VidTrBackbone` or a
`VidTrClassifier`, applies the same defaults as `VidTrBackbone` (class-token layout, first joint
layer) and walks the layers with the token counts the model really computes: the (T+1) x (S+1)
class-token grid of VidTr-S/M/L, the bypassing single class token of C-VidTr's separable layers, the
1 + tau*S sequence of joint layers, frames shrinking in the pooling layers.
"""

import dataclasses

from vidtr_keras.models.backbone import layer_plan
from vidtr_keras.models.presets import get_preset

_SPEC_KEYS = (
    "num_frames",
    "image_size",
    "patch_size",
    "num_channels",
    "hidden_dim",
    "num_layers",
    "num_heads",
    "mlp_dim",
    "attention",
    "class_token_layout",
    "pool_layers",
    "frames_dropped",
    "pooling",
    "joint_from_layer",
    "dropout",
    "attention_dropout",
)

_DEFAULTS = {
    "num_frames": 8,
    "image_size": 224,
    "patch_size": (1, 16, 16),
    "num_channels": 3,
    "hidden_dim": 768,
    "num_layers": 12,
    "num_heads": 12,
    "mlp_dim": 3072,
    "attention": "temporal_spatial",
    "class_token_layout": None,
    "pool_layers": (),
    "frames_dropped": (),
    "pooling": "std_topk",
    "joint_from_layer": None,
    "dropout": 0.1,
    "attention_dropout": 0.1,
}


def _triple(value):
    return (int(value),) * 3 if isinstance(value, int) else tuple(int(v) for v in value)


def _pair(value):
    return (int(value),) * 2 if isinstance(value, int) else tuple(int(v) for v in value)


@dataclasses.dataclass(frozen=True)
class LayerShape:
    """One encoder layer as the model runs it.

    Attributes:
        index: 0-based layer number.
        kind: "joint" or a separable order ("temporal_spatial", "spatial_temporal", "spatial",
            "temporal").
        frames_in, frames_out: temporal tokens (patch frames, class row not included) before and
            after the layer; they differ in a pooling layer.
        rows_in, rows_out, columns: the token grid of a separable layer, class-token row and
            column included for the grid layout (rows = frames + 1, columns = S + 1); for a joint
            layer rows are 1 and columns the 1 + frames*S tokens of the sequence.
        bypass_tokens: tokens that skip the attention but go through the MLP (C-VidTr's class token
            in its separable layers), 0 otherwise.
        pooling: "std_topk" (inside the temporal attention, one-hot selection matmuls), "average"
            or "conv" (on the token grid after the attention), or None.
    """

    index: int
    kind: str
    frames_in: int
    frames_out: int
    rows_in: int
    rows_out: int
    columns: int
    bypass_tokens: int
    pooling: str = None

    @property
    def tokens_in(self):
        return self.rows_in * self.columns

    @property
    def tokens_out(self):
        return self.rows_out * self.columns

    @property
    def frames_dropped(self):
        return self.frames_in - self.frames_out


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A VidTr configuration resolved to numbers (see `model_spec`)."""

    num_frames: int
    image_size: tuple
    patch_size: tuple
    num_channels: int
    hidden_dim: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    attention: str
    class_token_layout: str
    pool_layers: tuple
    frames_dropped: tuple
    pooling: str
    joint_from_layer: object
    dropout: float
    attention_dropout: float
    num_classes: int
    name: str = None

    @property
    def token_frames(self):
        return self.num_frames // self.patch_size[0]

    @property
    def grid_size(self):
        return (self.image_size[0] // self.patch_size[1], self.image_size[1] // self.patch_size[2])

    @property
    def patches_per_frame(self):
        """S, patch tokens per temporal token."""
        return self.grid_size[0] * self.grid_size[1]

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    @property
    def plan(self):
        """[(attention kind, frames dropped)] per layer, exactly `VidTrBackbone.layer_plan`."""
        return layer_plan(
            self.num_layers,
            self.attention,
            self.class_token_layout,
            self.pool_layers,
            self.frames_dropped,
            self.joint_from_layer,
        )

    def layers(self):
        """The `LayerShape` of every encoder layer, in order."""
        grid = self.class_token_layout == "grid"
        s = self.patches_per_frame
        t = self.token_frames
        out = []
        for i, (kind, dropped) in enumerate(self.plan):
            if kind == "joint":
                n = 1 + t * s
                out.append(LayerShape(i, kind, t, t, 1, 1, n, 0, None))
                continue
            rows = t + (1 if grid else 0)
            pooling = self.pooling if dropped else None
            out.append(
                LayerShape(
                    i,
                    kind,
                    t,
                    t - dropped,
                    rows,
                    rows - dropped,
                    s + (1 if grid else 0),
                    0 if grid else 1,
                    pooling,
                )
            )
            t -= dropped
        return out

    def config(self):
        """The backbone config (keyword arguments of `VidTrBackbone`) this spec describes."""
        return {k: getattr(self, k) for k in _SPEC_KEYS}


def _config_of(model_or_preset):
    """(backbone config dict, num_classes, name) from any accepted description of a model."""
    if isinstance(model_or_preset, str):
        entry = get_preset(model_or_preset)
        return entry["config"], entry["num_classes"], model_or_preset
    if isinstance(model_or_preset, ModelSpec):
        return model_or_preset.config(), model_or_preset.num_classes, model_or_preset.name
    if isinstance(model_or_preset, dict):
        if "config" in model_or_preset:
            return dict(model_or_preset["config"]), model_or_preset.get("num_classes", 0), None
        return dict(model_or_preset), 0, None
    backbone = getattr(model_or_preset, "backbone", None)
    if backbone is not None and hasattr(backbone, "layer_plan"):  # a VidTrClassifier
        return backbone.get_config(), int(model_or_preset.num_classes), model_or_preset.name
    if hasattr(model_or_preset, "layer_plan"):  # a VidTrBackbone
        return model_or_preset.get_config(), 0, model_or_preset.name
    raise TypeError(
        "Expected a preset name, a config dict, a ModelSpec, a VidTrBackbone or a VidTrClassifier, "
        f"got {type(model_or_preset).__name__}."
    )


def model_spec(model_or_preset, frames=None, image_size=None, num_classes=None, **overrides):
    """Resolves a model description to a `ModelSpec`.

    Args:
        model_or_preset: a preset name ("vidtr_s"), a preset entry (dict with "config"), a backbone
            config dict, a `ModelSpec`, a `VidTrBackbone` or a `VidTrClassifier`.
        frames: clip length; the model is taken as configured for it (`num_frames`), so no
            position-embedding resize is involved.
        image_size: int or (height, width), likewise.
        num_classes: classifier width; the preset's or classifier's when None, 0 for a bare
            backbone or config dict (no head).
        **overrides: any other backbone argument (`attention`, `pool_layers`, `hidden_dim`, ...).

    Returns:
        a `ModelSpec`.
    """
    config, classes, name = _config_of(model_or_preset)
    config.update(overrides)
    if frames is not None:
        config["num_frames"] = int(frames)
    if image_size is not None:
        config["image_size"] = image_size
    values = {k: config.get(k, _DEFAULTS[k]) for k in _SPEC_KEYS}
    values["image_size"] = _pair(values["image_size"])
    values["patch_size"] = _triple(values["patch_size"])
    values["pool_layers"] = tuple(int(i) for i in values["pool_layers"])
    values["frames_dropped"] = tuple(int(k) for k in values["frames_dropped"])
    # The same defaults as VidTrBackbone.__init__.
    if values["class_token_layout"] is None:
        single = values["attention"] == "joint" or values["pool_layers"]
        values["class_token_layout"] = "single" if single else "grid"
    if (
        values["class_token_layout"] == "single"
        and values["attention"] != "joint"
        and values["joint_from_layer"] is None
    ):
        if not values["pool_layers"]:
            raise ValueError("A single class token with separable attention needs joint_from_layer.")
        values["joint_from_layer"] = values["pool_layers"][-1] + 1
    for label, size, p in (
        ("num_frames", values["num_frames"], values["patch_size"][0]),
        ("image height", values["image_size"][0], values["patch_size"][1]),
        ("image width", values["image_size"][1], values["patch_size"][2]),
    ):
        if size % p:
            raise ValueError(f"{label}={size} is not divisible by the patch size {p}.")
    if values["hidden_dim"] % values["num_heads"]:
        raise ValueError(f"num_heads={values['num_heads']} does not divide hidden_dim={values['hidden_dim']}.")
    if sum(values["frames_dropped"]) >= values["num_frames"] // values["patch_size"][0]:
        raise ValueError(f"The pooling schedule {values['frames_dropped']} drops every frame.")
    classes = classes if num_classes is None else int(num_classes)
    return ModelSpec(**values, num_classes=int(classes or 0), name=name)
