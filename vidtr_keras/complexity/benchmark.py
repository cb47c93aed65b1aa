"""Speed and memory of one VidTr model on the current backend, against that backend's own matmul peak.

`benchmark(preset, ...)` times inference (`predict_on_batch`) and the training step users run
(`compile` with SGD + momentum, then `train_on_batch`: `jax.jit`, `tf.function` or eager PyTorch),
measures the backend's float32 matmul peak in the same process (2048^3, compiled where the backend
compiles), and reads the process's peak resident memory. Achieved GFLOP/s use the full analytic FLOP
count (`flops(..., convention="full")`; a training step counted as 3x the forward pass).

With `backend_tuning=True` (the default) the backend settings the training tools apply are applied
first (`vidtr_keras.backends.tune_backend`: on JAX, Threefry dropout bits lowered
as straight-line code for the CPU; same bits, faster), so the numbers describe what `vidtr train`
runs; which were applied is recorded in the result.

Run it in a fresh process per measurement (`python -m vidtr_keras.complexity.benchmark '<json>'`
prints `PROGRESS` lines and one `RESULT <json>` line, the protocol of `complexity.runner`): the
peak-memory counter describes the whole process.
Wall-clock numbers depend on what else runs on the machine; `os.getloadavg()` is recorded with
every result, and the process's CPU time beside the wall time.
"""

import json
import os
import statistics
import sys
import time

import keras
import numpy as np

from vidtr_keras.complexity.flops import flops
from vidtr_keras.complexity.measure import _proc_status, _release_and_reset_peak
from vidtr_keras.complexity.memory import fits_in_memory

MODES = ("inference", "train")


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def matmul_peak(size=2048, runs=5):
    """The backend's best float32 (size x size) @ (size x size) rate in GFLOP/s (compiled on JAX and
    TensorFlow, eager on PyTorch: `profile.compiled`), best of `runs` after a warm-up."""
    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((size, size)).astype("float32"))
    b = keras.ops.convert_to_tensor(rng.standard_normal((size, size)).astype("float32"))
    from vidtr_keras.complexity.profile import compiled

    f = compiled(keras.ops.matmul)

    def run():
        f(a, b)

    run()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def benchmark(
    preset,
    mode="train",
    frames=None,
    batch_size=1,
    remat=False,
    mixed_precision=False,
    runs=3,
    warmup=1,
    image_size=224,
    backend_tuning=True,
    on_progress=None,
):
    """Times `runs` inference calls or training steps of `preset` after `warmup` untimed ones.

    Args:
        preset: a preset name.
        mode: "inference" or "train" (SGD, momentum 0.9, sparse cross-entropy).
        frames: clip length (the preset's by default); the model is built for it.
        batch_size: clips per call.
        remat: `VidTrBackbone(remat=True)`.
        mixed_precision: build under the `mixed_bfloat16` dtype policy.
        runs, warmup: timed and untimed calls.
        image_size: clip height and width.
        backend_tuning: apply `tune_backend()` first (results identical; see the module docstring).
        on_progress: optional callback(str) told what is running.

    Returns:
        dict with `seconds` (median), `runs_s`, `cpu_s` (median CPU time of the process per call),
        `gflop` (full count for one call), `gflops` (achieved), `peak_gflops` (matmul, same process,
        best of before and after), `percent_of_peak`, `baseline_rss` (before the model),
        `peak_rss` (peak during the timed calls), `predicted_bytes` (the memory model's training
        footprint incl. runtime), `activation_bytes_model`, `state_bytes_model`, `loadavg`,
        `backend_tuning` (the settings applied, see `backend_tuning`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}.")
    from vidtr_keras.models import build_model, get_preset

    note = on_progress or (lambda message: None)
    tuning = {}
    if backend_tuning:
        from vidtr_keras.backends import tune_backend

        tuning = tune_backend()
    note("matmul peak")
    peak_before = matmul_peak()
    baseline = _proc_status()["VmRSS"]
    frames = int(frames or get_preset(preset)["config"]["num_frames"])
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model(preset, num_frames=frames, image_size=image_size, remat=remat)
    finally:
        keras.config.set_dtype_policy(previous)
    rng = np.random.default_rng(0)
    clip = rng.standard_normal((batch_size, frames, image_size, image_size, 3)).astype("float32")
    labels = (np.arange(batch_size) % 400).astype("int32")
    if mode == "train":
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

        def call():
            model.train_on_batch(clip, labels)

    else:

        def call():
            keras.ops.convert_to_numpy(model.predict_on_batch(clip))

    note(f"{mode}: compile and warm-up")
    start = time.perf_counter()
    for _ in range(max(warmup, 1)):
        call()
    warm_seconds = time.perf_counter() - start
    reset = _release_and_reset_peak()
    times, cpu = [], []
    for i in range(runs):
        note(f"{mode}: run {i + 1}/{runs}")
        c0, t0 = _cpu_seconds(), time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        cpu.append(_cpu_seconds() - c0)
    peak_rss = _proc_status()["VmHWM"]
    note("matmul peak")
    peak_after = matmul_peak()
    forward = flops(preset, frames=frames, image_size=image_size, convention="full").flops * batch_size
    gflop = forward * (3 if mode == "train" else 1) / 1e9
    seconds = statistics.median(times)
    peak = max(peak_before, peak_after)
    fit = fits_in_memory(
        preset,
        1 << 50,
        batch_size=batch_size,
        frames=frames,
        image_size=image_size,
        remat=remat,
        mixed_precision=mixed_precision,
    )
    return {
        "preset": preset,
        "backend": keras.backend.backend(),
        "mode": mode,
        "frames": frames,
        "batch_size": batch_size,
        "remat": bool(remat),
        "mixed_precision": bool(mixed_precision),
        "seconds": seconds,
        "runs_s": times,
        "cpu_s": statistics.median(cpu),
        "warmup_s": warm_seconds,
        "gflop": gflop,
        "gflops": gflop / seconds,
        "peak_gflops": peak,
        "peak_gflops_before_after": [peak_before, peak_after],
        "percent_of_peak": 100.0 * gflop / seconds / peak,
        "baseline_rss": baseline,
        "peak_rss": peak_rss,
        "peak_reset": reset,
        "predicted_bytes": fit.required_bytes if mode == "train" else None,
        "activation_bytes_model": fit.activation_bytes,
        "state_bytes_model": fit.state_bytes,
        "loadavg": list(os.getloadavg()),
        "backend_tuning": tuning,
        "threads": os.cpu_count(),
    }


def main(argv=None):
    """`python -m vidtr_keras.complexity.benchmark '<json kwargs of benchmark>'`: one `RESULT` line."""
    kwargs = json.loads((argv or sys.argv[1:])[0])
    try:
        result = benchmark(**kwargs, on_progress=lambda m: print("PROGRESS " + m, flush=True))
    except MemoryError as err:
        result = {**kwargs, "error": f"MemoryError: {err}"}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
