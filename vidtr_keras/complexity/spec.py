"""The shape of a VidTr model as plain numbers: what the FLOP and memory models count from.

`model_spec` accepts a preset name, a preset entry or backbone config dict, a `VidTrBackbone` or a
`VidTrClassifier`, resolves it with the backbone's own `BackboneConfig` (the same defaults and the
same checks, so the FLOP model cannot accept a configuration the model rejects) and walks the layers
with the token counts the model really computes: the (T+1) x (S+1) class-token grid of VidTr-S/M/L,
the bypassing single class token of C-VidTr's separable layers, the 1 + tau*S sequence of joint
layers, frames shrinking in the pooling layers.
"""

import dataclasses

from vidtr_keras.models.config import BackboneConfig
from vidtr_keras.models.presets import get_preset


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
class ModelSpec(BackboneConfig):
    """A resolved `BackboneConfig` plus the classifier width and a name (see `model_spec`).

    Every field, default and check is `BackboneConfig`'s; derived values (`token_frames`,
    `grid_size`, `patches_per_frame`, `head_dim`, `layer_plan`) too.
    """

    num_classes: int = 0
    name: str = None

    @property
    def plan(self):
        """[(attention kind, frames dropped)] per layer, exactly `VidTrBackbone.layer_plan`."""
        return self.layer_plan

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
        return self.backbone_kwargs()


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
        return backbone.backbone_config.backbone_kwargs(), int(model_or_preset.num_classes), model_or_preset.name
    if hasattr(model_or_preset, "layer_plan"):  # a VidTrBackbone
        return model_or_preset.backbone_config.backbone_kwargs(), 0, model_or_preset.name
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
    fields = {f.name for f in dataclasses.fields(BackboneConfig)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise TypeError(f"Unknown backbone argument(s) {unknown}; VidTrBackbone accepts {sorted(fields)}.")
    values = {k: v for k, v in config.items() if k in fields}
    classes = classes if num_classes is None else int(num_classes)
    return ModelSpec(**values, num_classes=int(classes or 0), name=name)
