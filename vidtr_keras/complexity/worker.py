"""Measurement worker: `python -m vidtr_keras.complexity.worker '<task json>'`, one backend per
process (KERAS_BACKEND), started by `measure.run_worker` through `complexity.runner`. Prints one
`RESULT <json>` line per measured model, so the caller can show progress; errors of one item are
reported in it (`"error"`) and the others still run.

Task kinds (each with "models": [{"preset": name, "overrides": {...}, "label": ...}, ...]):
- "flops": the backend counter (`crosscheck.backend_flops`) and the analytic count of each model.
- "latency": `measure.inference_latency` (with "runs", "warmup").
- "train_memory": `measure.peak_step_memory` of the first model only (a fresh process per
  measurement keeps the peak clean), with "batch_size".
- "xla_memory": `measure.xla_training_memory` of each model (JAX only), with "batch_size".
- "saved_tensors": `measure.torch_saved_tensors` of each model (torch only), with "batch_size".
"""

import json
import sys
import time
import traceback


def _run(kind, model, task):
    from vidtr_keras.complexity import crosscheck, measure

    preset = model.get("preset") or model.get("config")  # a preset name or a backbone config dict
    overrides = dict(model.get("overrides", {}))
    if kind == "flops":
        counter, analytic = crosscheck.count_flops(preset, whole_program=task.get("whole_program", True), **overrides)
        return {
            "backend_flops": counter.linear_algebra_flops,
            "whole_program_flops": counter.whole_program_flops,
            "analytic_flops": analytic.flops,
            "method": counter.method,
            "by_op": counter.by_op,
        }
    if kind == "latency":
        return measure.inference_latency(preset, runs=task.get("runs", 3), warmup=task.get("warmup", 1), **overrides)
    if kind == "train_memory":
        return measure.peak_step_memory(preset, batch_size=task.get("batch_size", 1), **overrides)
    if kind == "xla_memory":
        return measure.xla_training_memory(preset, batch_size=task.get("batch_size", 1), **overrides)
    if kind == "saved_tensors":
        return measure.torch_saved_tensors(preset, batch_size=task.get("batch_size", 1), **overrides)
    raise ValueError(f"Unknown task kind {kind!r}.")


def main(argv=None):
    task = json.loads((argv or sys.argv[1:])[0])
    import keras

    models = task["models"][:1] if task["kind"] == "train_memory" else task["models"]
    for model in models:
        start = time.perf_counter()
        item = {"label": model.get("label", model.get("preset")), "backend": keras.backend.backend()}
        try:
            item.update(_run(task["kind"], model, task))
        except Exception as err:  # reported, so that one failing model does not hide the others
            item["error"] = f"{type(err).__name__}: {err}"
            item["traceback"] = traceback.format_exc()[-2000:]
        item["wall_seconds"] = time.perf_counter() - start
        print("RESULT " + json.dumps(item), flush=True)
        keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
