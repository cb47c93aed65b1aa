"""Every backend-specific workaround of vidtr_keras, each documented once in its module with a link to the
result that measured it:

- `xla_cpu`: JAX on the CPU: the XLA flag that keeps remat, the residual-gradient fence, the device probe;
- `jax_rng`: JAX on the CPU: dropout's random bits as straight-line code;
- `torch_cpu`: PyTorch on the CPU: intra-op threads for small models, the fused-attention default;
- `torch_ops`: PyTorch: the linear projection as one fused call (`addmm`), as torch's own layers make it;
- `env`: TensorFlow's oneDNN variable, its start-up log lines, the environment of child processes.

Also here, as each framework's own engine rather than a workaround: `distributed`, the TensorFlow
(`tf.distribute`) and PyTorch (`torch.distributed`) side of data-parallel training, which
`vidtr_keras.training.distribute` drives.

Two entry points apply them. `apply_defaults()` is what importing vidtr_keras does (unless
`VIDTR_KERAS_NO_BACKEND_DEFAULTS=1`): environment variables that must be in place before a backend
starts, and TensorFlow's start-up log lines held back. `tune_backend()` is what the tools that train or
benchmark call before their first step (never on import). Policies a user may want to change are
switches in `vidtr_keras.config` and arguments of the layers.

This package imports nothing of Keras or of a backend at import time (the face imports it before Keras,
so that TensorFlow finds its variables set); its modules that need Keras are imported by the functions
below.
"""

import os

from vidtr_keras.backends import env

NO_DEFAULTS_VARIABLE = "VIDTR_KERAS_NO_BACKEND_DEFAULTS"


def defaults_enabled(environ=None):
    """False when `VIDTR_KERAS_NO_BACKEND_DEFAULTS=1` (or true/yes/on) asks importing vidtr_keras to leave
    the environment alone."""
    environ = os.environ if environ is None else environ
    return environ.get(NO_DEFAULTS_VARIABLE, "").strip().lower() not in ("1", "true", "yes", "on")


def apply_defaults(keras_backend=None, environ=None):
    """The backend defaults importing vidtr_keras applies; returns {setting: applied}.

    - `TF_ENABLE_ONEDNN_OPTS=1` unless set (`env.tensorflow_defaults`); TensorFlow reads it when it is
      imported, so call this before Keras is imported;
    - with `keras_backend=None`, imports Keras to ask for the backend, holding back TensorFlow's C++
      start-up log lines (`env.quiet_tensorflow_startup`);
    - on a CPU-only JAX, the XLA flag that keeps remat (`xla_cpu.keep_remat_on_cpu`); XLA reads it when
      JAX starts its first backend.

    Args:
        keras_backend: the Keras backend's name; None imports Keras and asks it.
        environ: the environment to change (os.environ).
    """
    environ = os.environ if environ is None else environ
    applied = {"TF_ENABLE_ONEDNN_OPTS": env.tensorflow_defaults(environ)}
    if keras_backend is None:
        with env.quiet_tensorflow_startup(environ):
            import keras

        keras_backend = keras.backend.backend()
    from vidtr_keras.backends import xla_cpu

    applied["xla_remat_flag"] = xla_cpu.keep_remat_on_cpu(keras_backend, environ)
    return applied


def tune_backend():
    """Applies every speed setting that helps the current backend on the CPU without changing results.

    Call it at start-up, before the first training step is compiled (`vidtr train` and the benchmark do).

    Returns:
        dict {setting: applied} (on JAX {"fast_jax_cpu_rng": True}), to be recorded with timings.
    """
    from vidtr_keras.backends import jax_rng

    return {"fast_jax_cpu_rng": jax_rng.fast_jax_cpu_rng()}


__all__ = ["NO_DEFAULTS_VARIABLE", "apply_defaults", "defaults_enabled", "env", "tune_backend"]
