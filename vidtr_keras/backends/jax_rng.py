"""JAX on the CPU: dropout's random bits lowered as straight-line code (the same bits).

Dropout's random bits come from JAX's Threefry-2x32 generator, which JAX lowers for the CPU platform as
a 5-iteration loop over the whole bit array (`use_rolled_loops=True`): every iteration writes and
re-reads full-size temporaries, and XLA:CPU cannot fuse it with the dropout mask. VidTr-S draws about
12.5 M dropout bits per layer and step (the spatial attention probabilities and the MLP hidden layer are
most of them), and in the profile of the JAX training step this generator was a sizeable part of the
step. `fast_jax_cpu_rng()` registers JAX's own straight-line (unrolled) Threefry lowering, which JAX
already uses on every other platform, for the CPU as well: the same algorithm, the same keys and
counters, the same bits (bit-identical dropout masks and initialisations: runs stay reproducible and
comparable with runs made without it), only emitted as one fusible elementwise computation. Applied
explicitly by the tools that train or benchmark (`vidtr_keras.backends.tune_backend`), never on import.
Measured: the JAX training-step paragraph of results/benchmark.md ("Dropout's Threefry bits").

The setting uses a private JAX hook (the lowering rule of the `threefry2x32` primitive); when that is
not there (another JAX version), nothing is changed and `False` is returned.
"""

import keras


def fast_jax_cpu_rng():
    """On the JAX backend, lowers Threefry random-bit generation for the CPU as straight-line code
    (bit-identical results, faster dropout); a no-op on the other backends.

    Call it before the first training step is compiled: functions compiled earlier keep the loop.
    Idempotent.

    Returns:
        True when the JAX CPU lowering is (now) the unrolled one, False when nothing was changed
        (another backend, or a JAX version without the expected hook).
    """
    if keras.backend.backend() != "jax":
        return False
    try:  # JAX is imported only when it is the backend
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32
    except ImportError:
        return False
    primitive = getattr(threefry2x32, "threefry2x32_p", None)
    unrolled = getattr(threefry2x32, "_threefry2x32_lowering_rule", None)
    if primitive is None or unrolled is None or not hasattr(mlir, "register_lowering"):
        return False
    mlir.register_lowering(primitive, unrolled, platform="cpu")
    return True
