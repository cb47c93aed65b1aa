"""Times a plain Keras training step of one preset with whatever `vidtr_keras` is first on the path.

Run by `benchmarks.before` once per (backend, preset, version), in a fresh process:

    PYTHONPATH=<tree> KERAS_BACKEND=jax python benchmarks/_step_timer.py '{"preset": "cvidtr_s"}'

It uses only the public API that every version of vidtr-keras has (`vidtr_keras.models.build_model`)
and none of the library's tuning helpers, so an old checkout and the current one are timed the way a
user's own `model.compile(...)` + `train_on_batch` / `fit` runs them. In the same process it measures
the backend's float32 2048^3 matmul peak with `keras.ops.matmul` (compiled with `jax.jit` on JAX, a
`tf.function` on TensorFlow, eager on PyTorch), best of a few, before and after the timed steps.

Prints `PROGRESS <text>` lines while it runs and one `RESULT <json>` line at the end: the median,
min and max seconds of the timed steps, the matmul peak, the path `vidtr_keras` was imported from
(which tree was timed), the backend, the model's parameter count and the load average.
"""

import json
import os
import statistics
import sys
import time

# Run as a script, Python puts this file's folder (benchmarks/) first on sys.path; only PYTHONPATH's tree
# may provide the imports.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

DEFAULTS = {"preset": "cvidtr_s", "frames": 8, "image_size": 224, "runs": 3, "peak_size": 2048, "peak_runs": 5}


def _note(text):
    print(f"PROGRESS {text}", flush=True)


def _compiled_matmul():
    """keras.ops.matmul compiled the way the backend runs a model; the callable blocks until done."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # the backend's compiler, imported only on that backend (tooling, not library code)

        f = jax.jit(keras.ops.matmul)
        return lambda a, b: f(a, b).block_until_ready()
    if backend == "tensorflow":
        import tensorflow as tf  # the backend's compiler, imported only on that backend

        f = tf.function(keras.ops.matmul, jit_compile=False)
        return lambda a, b: f(a, b).numpy()
    if backend == "torch":
        import torch  # imported only on that backend

        def run(a, b):
            with torch.no_grad():
                return keras.ops.matmul(a, b).cpu().numpy()

        return run
    return lambda a, b: keras.ops.convert_to_numpy(keras.ops.matmul(a, b))


def matmul_peak(size, runs):
    """Best float32 (size x size) @ (size x size) rate in GFLOP/s over `runs` calls after a warm-up."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((size, size)).astype("float32"))
    b = keras.ops.convert_to_tensor(rng.standard_normal((size, size)).astype("float32"))
    run = _compiled_matmul()
    run(a, b)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        run(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def time_steps(preset, frames, image_size, runs, peak_size, peak_runs):
    import keras
    import numpy as np

    import vidtr_keras
    from vidtr_keras.models import build_model

    _note("matmul peak")
    peak_before = matmul_peak(peak_size, peak_runs)
    keras.utils.set_random_seed(0)
    _note("build")
    model = build_model(preset, num_frames=frames, image_size=image_size)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    clip = rng.standard_normal((1, frames, image_size, image_size, 3)).astype("float32")
    label = np.zeros((1,), dtype="int32")
    _note("warm-up step (compiles)")
    start = time.perf_counter()
    model.train_on_batch(clip, label)
    warmup_s = time.perf_counter() - start
    load_start = os.getloadavg()
    times = []
    for i in range(runs):
        _note(f"step {i + 1}/{runs}")
        start = time.perf_counter()
        model.train_on_batch(clip, label)  # returns the logs as numpy: the step has finished
        times.append(time.perf_counter() - start)
    load_end = os.getloadavg()
    _note("matmul peak")
    peak_after = matmul_peak(peak_size, peak_runs)
    return {
        "preset": preset,
        "frames": frames,
        "image_size": image_size,
        "backend": keras.backend.backend(),
        "vidtr_keras": os.path.dirname(os.path.abspath(vidtr_keras.__file__)),
        "keras": keras.__version__,
        "params": int(model.count_params()),
        "runs_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "warmup_s": warmup_s,
        "peak_gflops": max(peak_before, peak_after),
        "peak_gflops_before_after": [peak_before, peak_after],
        "loadavg_start": list(load_start),
        "loadavg_end": list(load_end),
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python benchmarks/_step_timer.py '<json: preset, frames, image_size, runs>'")
    args = dict(DEFAULTS, **json.loads(argv[0]))
    unknown = sorted(set(args) - set(DEFAULTS))
    if unknown:
        sys.exit(f"unknown argument(s) {unknown}; accepted: {sorted(DEFAULTS)}")
    if int(args["runs"]) < 1:
        sys.exit(f"runs must be >= 1, got {args['runs']}")
    result = time_steps(
        str(args["preset"]),
        int(args["frames"]),
        int(args["image_size"]),
        int(args["runs"]),
        int(args["peak_size"]),
        int(args["peak_runs"]),
    )
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
