"""Rematerialisation on JAX on the CPU: the one XLA setting it needs, applied when vidtr_keras is imported.

`jax.checkpoint` (what `keras.remat` and `VidTrBackbone(remat=True)` use on JAX) keeps a block's
recomputation apart from its forward pass with optimization barriers. XLA's CPU compiler removes
every optimization barrier early in its pipeline (its `cse_barrier_expander` pass), after which
common-subexpression elimination merges the recomputation back into the forward pass: the compiled
step keeps every activation, exactly as without remat (a VidTr-S step's temporaries were the same
size both ways). With that one pass disabled the barriers stay, XLA:CPU compiles them as no-ops,
and remat keeps only each block's input (a stack of 8 MLP blocks at VidTr-S's width: 519 -> 68 MiB of
temporaries, the same gradients bit for bit). Without barriers (no remat) the setting changes nothing.

XLA reads `XLA_FLAGS` once, when JAX starts its first backend, so the flag has to be in the
environment before the first JAX computation: `import vidtr_keras` adds it (when Keras runs on JAX
and JAX is not set up for an accelerator), and a model with `remat=True` warns when it is missing.
A setting the user made (their own `--xla_disable_hlo_passes`) is kept and extended.
"""

import importlib.util
import os
import re

REMAT_PASS = "cse_barrier_expander"
_DISABLE = "--xla_disable_hlo_passes"
# Accelerator plugins of JAX: with one of them the default device may not be the CPU, whose
# compiler is the only one this setting is for.
_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "jax_rocm7_plugin", "libtpu")


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


def cpu_only_jax(environ=None):
    """True unless JAX may run on an accelerator (a plugin installed and JAX_PLATFORMS not "cpu")."""
    environ = os.environ if environ is None else environ
    if environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return True
    return not any(importlib.util.find_spec(name) is not None for name in _ACCELERATOR_PLUGINS)


def keep_remat_on_cpu(backend, environ=None):
    """Adds the setting to `environ["XLA_FLAGS"]` when `backend` is "jax" on a CPU-only JAX.

    Returns True when the flag is (now) there, False when nothing was done (another backend, or an
    accelerator JAX, whose compilers keep the barriers themselves). It takes effect only if JAX has
    not started a backend yet.
    """
    environ = os.environ if environ is None else environ
    if backend != "jax" or not cpu_only_jax(environ):
        return False
    environ["XLA_FLAGS"] = with_remat_kept(environ.get("XLA_FLAGS", ""))
    return True
