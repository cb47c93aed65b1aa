"""vidtr-keras: VidTr ("VidTr: Video Transformer Without Convolutions", ICCV 2021) in Keras 3.

One implementation for TensorFlow, JAX and PyTorch (set KERAS_BACKEND).
"""

import os

# TensorFlow's oneDNN kernels are off by default on some x86 CPUs (AVX2 without AVX-512), where a
# Conv3D training step is then ~10^4 times slower. An explicit setting by the user wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402

from vidtr_keras import _xla_flags  # noqa: E402

# JAX on the CPU: keep jax.checkpoint's optimization barriers, without which XLA merges remat's
# recomputation back into the forward pass (see `vidtr_keras._xla_flags`). XLA reads the flag when JAX
# starts its first backend, which importing Keras does not do.
_xla_flags.keep_remat_on_cpu(keras.backend.backend())

from vidtr_keras import layers  # noqa: E402
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

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "VidTrBackbone",
    "VidTrPreprocessor",
    "VidTrClassifier",
    "VidTrVideoClassifier",
    "export_model",
    "build_model",
    "get_preset",
    "layers",
    "preset_names",
]
