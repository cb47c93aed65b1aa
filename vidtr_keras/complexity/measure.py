"""Measuring what the analytic models predict: training memory and inference latency on the
current backend, and the same in a fresh subprocess per backend.

Keras picks its backend once per process, so `run_worker` starts `python -m
vidtr_keras.complexity.worker` with `KERAS_BACKEND` set; the in-process functions below use the
current backend and import its library lazily (an environment may have only that one installed).

Memory is measured three ways:
- `peak_step_memory`: the rise of the process's peak resident memory (`VmHWM` in /proc/self/status)
  during one training step (forward, backward, SGD update) over the resident memory just before it.
  Freed heap memory is first returned to the system (`malloc_trim`) and the peak counter reset
  (`/proc/self/clear_refs`, Linux), so the rise is the step's own memory: activations, gradients and
  temporaries. Parameters, already resident, are not in it.
- `xla_training_memory` (JAX): XLA's buffer assignment of the compiled training step
  (`compiled.memory_analysis()`): temporaries (activations kept for the backward pass and the
  backward pass's own buffers) plus arguments and outputs.
- `torch_saved_tensors` (PyTorch): the bytes of the tensors autograd saves for the backward pass
  (`torch.autograd.graph.saved_tensors_hooks`), on the "meta" device by default, so any size can
  be measured without memory or compute.
"""

import ctypes
import json
import statistics
import sys
import time

import keras
import numpy as np

from vidtr_keras.complexity.crosscheck import build_for_spec
from vidtr_keras.complexity.spec import model_spec


def _proc_status():
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _release_and_reset_peak():
    """Returns freed heap memory to the system and resets the peak-RSS counter; False where the
    kernel does not allow it (then the peak is the process's peak so far)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _labels(batch_size, num_classes):
    return np.arange(batch_size, dtype="int32") % max(num_classes, 1)


def _clip(spec, batch_size):
    h, w = spec.image_size
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch_size, spec.num_frames, h, w, spec.num_channels)).astype("float32")


def _loss(logits, labels):
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def make_training_step(model, clip, labels, learning_rate=1e-3):
    """A zero-argument callable running one training step (forward in training mode, cross-entropy,
    backward, plain SGD update) on the current backend, prepared (traced / compiled) but not run.

    Returns:
        (step, info): `step()` runs the step and waits for it; `info` is a dict (JAX: XLA's memory
        analysis of the compiled step).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # the backend's own jit; imported only when it is the backend

        def loss_fn(tv, ntv, x, y):
            logits, ntv = model.stateless_call(tv, ntv, x, training=True)
            return _loss(logits, y), ntv

        def train(tv, ntv, x, y):
            (loss, ntv), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv, x, y)
            return loss, [p - learning_rate * g for p, g in zip(tv, grads)], ntv

        state = {
            "tv": [v.value for v in model.trainable_variables],
            "ntv": [v.value for v in model.non_trainable_variables],
        }
        x, y = jax.numpy.asarray(clip), jax.numpy.asarray(labels)
        compiled = jax.jit(train, donate_argnums=(0, 1)).lower(state["tv"], state["ntv"], x, y).compile()
        stats = compiled.memory_analysis()
        info = {
            "xla_temp_bytes": int(stats.temp_size_in_bytes),
            "xla_argument_bytes": int(stats.argument_size_in_bytes),
            "xla_output_bytes": int(stats.output_size_in_bytes),
            "xla_alias_bytes": int(stats.alias_size_in_bytes),
        }

        def step():
            loss, state["tv"], state["ntv"] = compiled(state["tv"], state["ntv"], x, y)
            jax.block_until_ready((loss, state["tv"]))

        return step, info
    if backend == "tensorflow":
        import tensorflow as tf  # the backend's own graph compiler; imported only when it is the backend

        variables = model.trainable_variables
        x, y = tf.constant(clip), tf.constant(labels)

        @tf.function
        def train(x, y):
            with tf.GradientTape() as tape:
                loss = _loss(model(x, training=True), y)
            grads = tape.gradient(loss, variables)
            for v, g in zip(variables, grads):
                v.assign_sub(learning_rate * g)
            return loss

        train.get_concrete_function(x, y)  # trace now, run later

        def step():
            train(x, y).numpy()

        return step, {}
    if backend == "torch":
        import torch  # the backend's autograd; imported only when it is the backend

        x, y = keras.ops.convert_to_tensor(clip), keras.ops.convert_to_tensor(labels)
        params = [v.value for v in model.trainable_variables]

        def step():
            loss = _loss(model(x, training=True), y)
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p.sub_(learning_rate * p.grad)
                    p.grad = None

        return step, {}
    raise NotImplementedError(f"No training step for the {backend!r} backend.")


def peak_step_memory(model_or_preset, batch_size=1, frames=None, image_size=None, num_classes=None, **overrides):
    """Builds the model, prepares a training step and measures the resident memory one step adds.

    Run it in a fresh process (see `run_worker`): the numbers describe the whole process.

    Returns:
        dict: `baseline_bytes` (resident before the step: interpreter, libraries, parameters),
        `peak_bytes` (peak during the step), `step_bytes` (their difference), `peak_reset` (whether
        the peak counter could be reset), `seconds` (the step), `parameters`, and the training
        step's `info` (XLA's memory analysis on JAX).
    """
    spec = model_spec(model_or_preset, frames=frames, image_size=image_size, num_classes=num_classes, **overrides)
    model = build_for_spec(spec)
    step, info = make_training_step(model, _clip(spec, batch_size), _labels(batch_size, spec.num_classes))
    reset = _release_and_reset_peak()
    baseline = _proc_status()["VmRSS"]
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    peak = _proc_status()["VmHWM"]
    return {
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "step_bytes": peak - baseline,
        "peak_reset": reset,
        "seconds": seconds,
        "parameters": int(model.count_params()),
        **info,
    }


def xla_training_memory(model_or_preset, batch_size=1, frames=None, image_size=None, num_classes=None, **overrides):
    """XLA's memory analysis of one compiled training step (JAX backend only; compiles, runs nothing).

    Returns:
        dict with `xla_temp_bytes`, `xla_argument_bytes`, `xla_output_bytes`, `xla_alias_bytes`.
    """
    if keras.backend.backend() != "jax":
        raise RuntimeError("xla_training_memory needs KERAS_BACKEND=jax.")
    spec = model_spec(model_or_preset, frames=frames, image_size=image_size, num_classes=num_classes, **overrides)
    model = build_for_spec(spec)
    _, info = make_training_step(model, _clip(spec, batch_size), _labels(batch_size, spec.num_classes))
    return info


def torch_saved_tensors(
    model_or_preset, batch_size=1, frames=None, image_size=None, num_classes=None, device="meta", **overrides
):
    """Bytes of the tensors PyTorch autograd saves for the backward pass of one training forward.

    Views count once (by their base tensor); parameters are left out. On the "meta" device nothing is
    allocated or computed, so full-size and larger-than-memory configurations can be measured.

    Returns:
        dict: `saved_bytes`, `saved_tensors`.
    """
    if keras.backend.backend() != "torch":
        raise RuntimeError("torch_saved_tensors needs KERAS_BACKEND=torch.")
    import torch  # the backend's autograd; imported only when it is the backend
    from keras.src.backend.common import global_state

    spec = model_spec(model_or_preset, frames=frames, image_size=image_size, num_classes=num_classes, **overrides)
    with keras.device(device):
        model = build_for_spec(spec)
        h, w = spec.image_size
        clip = keras.ops.zeros((batch_size, spec.num_frames, h, w, spec.num_channels))
        # keras.device() stores the device as a string, and Keras then re-creates every meta
        # variable with torch.empty_like (without requires_grad) on each use; a torch.device value
        # passes the variables through as they are, so autograd records the graph.
        previous = global_state.get_global_attribute("torch_device")
        global_state.set_global_attribute("torch_device", torch.device(device))
        saved = {}

        def pack(t):
            base = t._base if t._base is not None else t
            saved[id(base)] = (base, base.untyped_storage().nbytes())
            return t

        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = model(clip, training=True)
        finally:
            global_state.set_global_attribute("torch_device", previous)
        if not out.requires_grad:
            raise RuntimeError("The forward pass recorded no autograd graph; nothing was measured.")
        params = {id(v.value) for v in model.variables}
        kept = [nbytes for key, (_, nbytes) in saved.items() if key not in params]
    return {"saved_bytes": int(sum(kept)), "saved_tensors": len(kept)}


def inference_latency(model_or_preset, runs=3, warmup=1, frames=None, image_size=None, num_classes=None, **overrides):
    """Median wall time of `model.predict_on_batch` on one clip (batch 1), after warm-up calls.

    `predict_on_batch` is Keras's compiled inference path: `jax.jit` on JAX, `tf.function` on
    TensorFlow, eager under `torch.no_grad` on PyTorch.

    Returns:
        dict: `median_ms`, `runs_ms`, `build_seconds`, `warmup_seconds`.
    """
    spec = model_spec(model_or_preset, frames=frames, image_size=image_size, num_classes=num_classes, **overrides)
    start = time.perf_counter()
    model = build_for_spec(spec)
    build = time.perf_counter() - start
    clip = _clip(spec, 1)
    start = time.perf_counter()
    for _ in range(warmup):
        np.asarray(model.predict_on_batch(clip))
    warm = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        np.asarray(model.predict_on_batch(clip))
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": statistics.median(times), "runs_ms": times, "build_seconds": build, "warmup_seconds": warm}


def run_worker(task, backend, on_item=None, timeout=None, threads=None):
    """Runs `task` (a JSON-able dict, see `vidtr_keras.complexity.worker`) in a fresh Python process
    with `KERAS_BACKEND=backend`, through the one child-process runner (`complexity.runner`).

    Args:
        task: {"kind": ..., ...}.
        backend: "tensorflow", "jax" or "torch".
        on_item: called with each partial result (dict) as the worker reports it, e.g. to advance a
            progress bar.
        timeout: seconds before the worker is killed (`runner.ChildTimeout`, a TimeoutError).
        threads: optional cap on the worker's intra-op threads.

    Returns:
        the worker's list of results.

    Raises:
        runner.ChildError: the worker failed (its last output line in the message).
    """
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import run_child

    env = child_env(backend)
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    cmd = [sys.executable, "-m", "vidtr_keras.complexity.worker", json.dumps(task)]
    name = f"the {backend} measurement worker ({task.get('kind')})"
    return run_child(cmd, env=env, timeout=timeout, on_result=on_item, name=name).results
