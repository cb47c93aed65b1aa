"""Backbone, classifier, presets and `build_model`."""

import keras  # noqa: F401 - used by the doctest examples

from vidtr_keras.models.backbone import VidTrBackbone
from vidtr_keras.models.classifier import VidTrClassifier
from vidtr_keras.models.config import BackboneConfig
from vidtr_keras.models.presets import PRESETS, get_preset, preset_names
from vidtr_keras.models.task import VidTrVideoClassifier

_CLASSIFIER_ARGS = ("dropout",)


def build_model(preset, num_classes=None, head_dropout=0.5, **overrides):
    """A `keras.Model` (a `VidTrClassifier`) on (batch, frames, height, width, channels) clips.

    Args:
        preset: a name from `preset_names()` (e.g. "vidtr_s", "cvidtr_s", "vidtr_tiny").
        num_classes: classifier width; the preset's default (400 for the Kinetics models) when None.
        head_dropout: dropout before the classifier.
        **overrides: any `VidTrBackbone` argument, e.g. `num_frames=16`, `mlp_activation="gelu"`,
            `attention="spatial_temporal"`, `pool_layers=(1, 3)`.

    Example:
    >>> model = build_model("vidtr_tiny", num_classes=5)
    >>> model(keras.ops.zeros((1, 4, 32, 32, 3))).shape
    (1, 5)
    """
    entry = get_preset(preset)
    config = entry["config"]
    unknown = sorted(set(overrides) - set(_backbone_args()))
    if unknown:
        raise TypeError(f"Unknown override(s) {unknown}; VidTrBackbone accepts {sorted(_backbone_args())}.")
    config.update(overrides)
    backbone = VidTrBackbone(**config, name=f"{preset}_backbone")
    classes = entry["num_classes"] if num_classes is None else num_classes
    return VidTrClassifier(backbone, classes, dropout=head_dropout, name=preset)


def _backbone_args():
    import inspect

    return [p for p in inspect.signature(VidTrBackbone.__init__).parameters if p not in ("self", "kwargs")]


__all__ = [
    "PRESETS",
    "BackboneConfig",
    "VidTrBackbone",
    "VidTrClassifier",
    "VidTrVideoClassifier",
    "build_model",
    "get_preset",
    "preset_names",
]
