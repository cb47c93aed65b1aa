"""JAX on the CPU (XLA:CPU): the XLA flag that keeps remat, the residual-gradient fence, the device probe.

Remat needs one XLA flag. `jax.checkpoint` (what `keras.remat` and `VidTrBackbone(remat=True)` use on
JAX) keeps a block's recomputation apart from its forward pass with optimization barriers. XLA's CPU
compiler removes every optimization barrier early in its pipeline (its `cse_barrier_expander` pass),
after which common-subexpression elimination merges the recomputation back into the forward pass: the
compiled step keeps every activation, exactly as without remat. With that one pass disabled the barriers
stay, XLA:CPU compiles them as no-ops, and remat keeps only each block's input (the same gradients bit
for bit). Without barriers (no remat) the flag changes nothing. XLA reads `XLA_FLAGS` once, when JAX
starts its first backend, so `import vidtr_keras` adds the flag (`keep_remat_on_cpu`, when Keras runs on
a CPU-only JAX) and a remat block warns when it is missing (`warn_if_remat_undone`). A setting the user
made (their own `--xla_disable_hlo_passes`) is kept and extended. Measured: the remat paragraph of
results/benchmark.md (VidTr-S training activations with and without remat on JAX).

The residual-gradient fence. Backpropagating through a pre-norm transformer, the gradient of block l's
input is the gradient of block l+1's input plus elementwise terms (the LayerNorm backward and the
residual add). XLA's CPU compiler fuses elementwise producers into each of their consumers instead of
computing them once, and here it does so transitively: each consumer of block l's input gradient (the
weight-gradient matmuls' layout transposes, LayerNorm's reductions, the next add) recomputes the whole
chain back to the last block, so the backward pass's elementwise work grows with the square of the depth.
XLA never fuses a dot into its consumers, so passing the gradient through an exact identity matmul
(`gradient_fence`) makes it a materialised buffer that the consumers read. The identity is applied over
groups of 8 channels (x @ I_8: 16 multiply-adds per value) and is exact for finite values: each output is
1 * g + 0 * (the group's other values). A non-finite gradient value turns its group's other values into
NaN (inf * 0), where training has already failed. `VidTrEncoderBlock(gradient_fence=None)` and
`vidtr_keras.config.enable_gradient_fence()` decide where it runs; by default in training on JAX on the
CPU (`on_jax_cpu`) only: TensorFlow on the CPU trains without XLA and PyTorch does not fuse. Measured:
the JAX training-step profile in results/benchmark.md ("Where the JAX training step goes").
"""

import importlib.util
import math
import os
import re
import warnings

import keras
from keras import ops

REMAT_PASS = "cse_barrier_expander"
_DISABLE = "--xla_disable_hlo_passes"
# Accelerator plugins of JAX: with one of them the default device may not be the CPU, whose
# compiler is the only one the flag is for.
ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "jax_rocm7_plugin", "libtpu")
GRADIENT_FENCE_GROUP = 8


def with_remat_kept(flags):
    """`flags` (an XLA_FLAGS string) with `cse_barrier_expander` among the disabled HLO passes.

    An existing `--xla_disable_hlo_passes=a,b` is extended (XLA keeps only the last occurrence of a
    flag, so a second one would drop the user's passes); otherwise the flag is appended.

    >>> with_remat_kept("")
    '--xla_disable_hlo_passes=cse_barrier_expander'
    >>> with_remat_kept("--xla_dump_to=/tmp/d --xla_disable_hlo_passes=foo")
    '--xla_dump_to=/tmp/d --xla_disable_hlo_passes=foo,cse_barrier_expander'
    """
    flags = (flags or "").strip()
    if REMAT_PASS in disabled_passes(flags):
        return flags
    found = list(re.finditer(rf"{_DISABLE}=(\S*)", flags))
    if not found:
        return f"{flags} {_DISABLE}={REMAT_PASS}".strip()
    last = found[-1]
    passes = [p for p in last.group(1).split(",") if p] + [REMAT_PASS]
    return flags[: last.start()] + f"{_DISABLE}={','.join(passes)}" + flags[last.end() :]


def disabled_passes(flags):
    """The HLO passes an XLA_FLAGS string disables (its last `--xla_disable_hlo_passes`, as XLA reads it)."""
    found = re.findall(rf"{_DISABLE}=(\S*)", flags or "")
    return [p for p in found[-1].split(",") if p] if found else []


def remat_kept(environ=None):
    """True when XLA_FLAGS keeps jax.checkpoint's barriers on the CPU (set before JAX starts)."""
    environ = os.environ if environ is None else environ
    return REMAT_PASS in disabled_passes(environ.get("XLA_FLAGS", ""))


def cpu_only_jax(environ=None, plugins=ACCELERATOR_PLUGINS):
    """True unless JAX may run on an accelerator (one of `plugins` installed and JAX_PLATFORMS not "cpu")."""
    environ = os.environ if environ is None else environ
    if environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return True
    return not any(importlib.util.find_spec(name) is not None for name in plugins)


def keep_remat_on_cpu(backend, environ=None, plugins=ACCELERATOR_PLUGINS):
    """Adds the flag to `environ["XLA_FLAGS"]` when `backend` is "jax" on a CPU-only JAX.

    Returns True when the flag is (now) there, False when nothing was done (another backend, or an
    accelerator JAX, whose compilers keep the barriers themselves). It takes effect only if JAX has
    not started a backend yet.
    """
    environ = os.environ if environ is None else environ
    if backend != "jax" or not cpu_only_jax(environ, plugins):
        return False
    environ["XLA_FLAGS"] = with_remat_kept(environ.get("XLA_FLAGS", ""))
    return True


_JAX_CPU = None


def on_jax_cpu():
    """True when Keras runs on JAX and every device JAX sees is a CPU (probed once, then cached)."""
    global _JAX_CPU
    if keras.backend.backend() != "jax":
        return False
    if _JAX_CPU is None:
        devices = keras.distribution.list_devices()
        _JAX_CPU = bool(devices) and all(str(d).lower().startswith("cpu") for d in devices)
    return _JAX_CPU


def remat_undone_message(environ=None):
    """The warning a remat block gives on JAX on the CPU without the flag, or None where all is well."""
    if not on_jax_cpu() or remat_kept(environ):
        return None
    return (
        "remat=True on JAX on the CPU saves no memory unless XLA keeps jax.checkpoint's barriers: set "
        f"XLA_FLAGS={with_remat_kept('')} before JAX starts (importing vidtr_keras first does it), or XLA "
        "merges the recomputation back into the forward pass."
    )


_REMAT_WARNED = False


def warn_if_remat_undone(stacklevel=3):
    """Warns once per process when remat runs on JAX on the CPU without the flag."""
    global _REMAT_WARNED
    if _REMAT_WARNED:
        return
    message = remat_undone_message()
    if message is not None:
        _REMAT_WARNED = True
        warnings.warn(message, stacklevel=stacklevel)


def _identity_matmul(g):
    shape = ops.shape(g)
    group = GRADIENT_FENCE_GROUP if math.prod(shape) % GRADIENT_FENCE_GROUP == 0 else shape[-1]
    eye = ops.eye(group, dtype=g.dtype)
    return ops.reshape(ops.matmul(ops.reshape(g, (-1, group)), eye), shape)


@ops.custom_gradient
def gradient_fence(x):
    """`x` unchanged; its gradient is the upstream gradient passed through an exact identity matmul, a
    buffer that XLA:CPU computes once instead of inside each of its consumers (module docstring)."""

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return _identity_matmul(upstream)

    return x, grad
