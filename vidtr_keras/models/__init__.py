"""Backbone, classifier, presets, the preset-directory format and the one model loader.

- `build_model(preset, ...)`: a model from a preset name (`preset_names()`);
- `load_model(spec, ...)`: a model from any spec (preset name or directory, run directory, `.keras`
  file, official checkpoint), see `vidtr_keras.models.loading`.
"""

from vidtr_keras.models.backbone import VidTrBackbone
from vidtr_keras.models.classifier import VidTrClassifier
from vidtr_keras.models.config import BackboneConfig
from vidtr_keras.models.loading import LoadedModel, build_model, load_model
from vidtr_keras.models.presets import PRESETS, get_preset, preset_names
from vidtr_keras.models.task import VidTrVideoClassifier

__all__ = [
    "PRESETS",
    "BackboneConfig",
    "LoadedModel",
    "VidTrBackbone",
    "VidTrClassifier",
    "VidTrVideoClassifier",
    "build_model",
    "get_preset",
    "load_model",
    "preset_names",
]
