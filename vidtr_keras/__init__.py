"""vidtr-keras: VidTr ("VidTr: Video Transformer Without Convolutions", ICCV 2021) in Keras 3.

One implementation for TensorFlow, JAX and PyTorch (set KERAS_BACKEND).

Importing the package has effects in this one place: `vidtr_keras.backends.apply_defaults()` runs before
anything else and
- sets `TF_ENABLE_ONEDNN_OPTS=1` unless you set it (TensorFlow reads it when it loads; its oneDNN kernels
  are off by default on some x86 CPUs, where they are needed for reasonable speed);
- imports Keras with TensorFlow's C++ start-up log lines (the oneDNN notice, the CPU-feature guard) held
  back, below the level `TF_CPP_MIN_LOG_LEVEL` asks for (default: informational lines hidden);
- on a CPU-only JAX, adds `--xla_disable_hlo_passes=cse_barrier_expander` to `XLA_FLAGS` (keeping your
  own flags), without which XLA:CPU merges remat's recomputation back into the forward pass.
Set `VIDTR_KERAS_NO_BACKEND_DEFAULTS=1` before the import to leave the environment alone. Why each
exists and what it was measured against: `vidtr_keras.backends`. Policies you may want to change at run
time (fused attention, the gradient fence) are switches in `vidtr_keras.config`.
"""

from vidtr_keras import backends

if backends.defaults_enabled():
    backends.apply_defaults()

from vidtr_keras import config, layers  # noqa: E402
from vidtr_keras.apps.export import export_model  # noqa: E402
from vidtr_keras.layers import VidTrPreprocessor  # noqa: E402
from vidtr_keras.models import (  # noqa: E402
    PRESETS,
    VidTrBackbone,
    VidTrClassifier,
    VidTrVideoClassifier,
    build_model,
    get_preset,
    preset_names,
)
from vidtr_keras.version import __version__  # noqa: E402

__all__ = [
    "PRESETS",
    "VidTrBackbone",
    "VidTrPreprocessor",
    "VidTrClassifier",
    "VidTrVideoClassifier",
    "export_model",
    "build_model",
    "get_preset",
    "config",
    "layers",
    "preset_names",
    "__version__",
]
