"""Fused against plain joint attention in inference, per model, on PyTorch: the same model timed both
ways in one process, interleaved.

Joint attention runs softmax(q k^T) v as one `keras.ops.dot_product_attention` call on PyTorch
(`torch.nn.functional.scaled_dot_product_attention`, which never materialises the attention map)
wherever the probabilities are neither returned nor dropped out (`JointAttention.uses_fused_attention`).
This script shows what that buys per model: in one fresh PyTorch process per model, inference calls
alternate between the fused form and the plain one (the layer's own code, switched with
`vidtr_keras.config.enable_fused_attention()` / `disable_fused_attention()`), so that both see the
same machine state; the median of each and their ratio are reported, with the largest output
difference. VidTr-S has no joint attention layer: its row measures the noise of the comparison.
TensorFlow and JAX keep the plain form (measured no faster with the fused call at VidTr's shapes), so
they have nothing to compare here.

Writes results/fused_attention.{md,csv}.

    python -m benchmarks fused_attention [--quick]
"""

import argparse
import json
import os
import sys

from reproduce import common

PRESETS = (("vanilla_s", 8), ("cvidtr_s", 8), ("vidtr_s", 8))
TIMEOUT_S = 1800  # one model's process: warm-up and every round of both forms
QUICK_PRESETS = (("vanilla_s", 8),)


def worker(preset, frames, runs):
    """Runs in a fresh PyTorch process: prints one RESULT line with both forms' timings."""
    import statistics
    import time

    import numpy as np
    import torch

    from vidtr_keras import config
    from vidtr_keras.models import build_model

    model = build_model(preset, num_frames=frames)
    clip = np.random.default_rng(0).standard_normal((1, frames, 224, 224, 3)).astype("float32")

    def call(use_fused):
        (config.enable_fused_attention if use_fused else config.disable_fused_attention)()
        try:
            with torch.no_grad():
                start = time.perf_counter()
                out = model.predict_on_batch(clip)
                return time.perf_counter() - start, np.asarray(out)
        finally:
            config.reset_fused_attention()

    outputs = {form: call(form)[1] for form in (True, False)}  # warm-up, and the outputs compared
    times = {True: [], False: []}
    for i in range(runs):
        print(f"PROGRESS run {i + 1}/{runs}", flush=True)
        for form in (True, False):
            times[form].append(call(form)[0])
    result = {
        "preset": preset,
        "frames": frames,
        "fused_s": statistics.median(times[True]),
        "plain_s": statistics.median(times[False]),
        "fused_runs": times[True],
        "plain_runs": times[False],
        "max_abs_diff": float(np.max(np.abs(outputs[True] - outputs[False]))),
        "threads": torch.get_num_threads(),
        "loadavg": os.getloadavg()[0],
    }
    print("RESULT " + json.dumps(result), flush=True)


def _measure(ctx, bar, preset, frames, runs):
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import ChildError, ChildTimeout, run_child

    cmd = [common.python_executable(), "-m", "benchmarks.fused_attention", "--worker", preset, str(frames), str(runs)]
    try:
        run = run_child(
            cmd,
            env=child_env("torch"),
            cwd=common.ROOT,
            timeout=TIMEOUT_S,
            on_progress=lambda text: ctx.progress.update(bar, description=f"fused_attention: {preset}: {text}"),
            name=f"the fused_attention worker ({preset})",
        )
        result = run.result or {"error": f"no RESULT line; last output: {run.last_line or 'none'}"}
    except (ChildError, ChildTimeout) as err:
        result = {"error": str(err)}
    if "error" in result:
        result.update(preset=preset, frames=frames)
        ctx.log(f"[red]fused_attention {preset}: {result['error']}[/red]")
    ctx.advance(bar, f"fused_attention: {preset} done")
    return result


def run(ctx):
    if not common.installed("torch"):
        raise RuntimeError("fused_attention compares PyTorch's fused attention: install torch (the torch extra).")
    presets = QUICK_PRESETS if ctx.quick else PRESETS
    runs = 3 if ctx.quick else 5
    bar = ctx.task("fused_attention", len(presets))
    results = [_measure(ctx, bar, preset, frames, runs) for preset, frames in presets]
    rows = []
    for r in results:
        if "fused_s" in r:
            rows.append(
                [
                    r["preset"],
                    r["frames"],
                    r["plain_s"],
                    r["fused_s"],
                    r["fused_s"] / r["plain_s"],
                    min(r["plain_runs"]),
                    max(r["plain_runs"]),
                    min(r["fused_runs"]),
                    max(r["fused_runs"]),
                    f"{r['max_abs_diff']:.1e}",
                    r["loadavg"],
                ]
            )
        else:
            rows.append([r["preset"], r["frames"]] + [None] * 8 + [r["error"]])
    columns = [
        "preset",
        "frames",
        "plain s",
        "fused s",
        "fused / plain",
        "plain min s",
        "plain max s",
        "fused min s",
        "fused max s",
        "max |logit difference|",
        "load avg (1 min)",
    ]
    notes = [
        f"PyTorch, batch 1, 224x224, `predict_on_batch` under `torch.no_grad()`; per model one fresh process, "
        f"one warm-up call of each form, then {runs} rounds alternating fused and plain (medians).",
        "fused: the layers as they run by default on PyTorch (`keras.ops.dot_product_attention` in joint "
        "attention: every layer of the vanilla model, C-VidTr's layers after its last pooling layer). "
        "plain: the same layers with `vidtr_keras.config.disable_fused_attention()`, i.e. the softmax(q k^T) v "
        "every backend runs in training with attention dropout. The largest logit difference between the two is "
        "float rounding.",
        "Separable attention stays plain on every backend: a first version of this comparison (same script, "
        "2026-11-27, git history of results/fused_attention.md) also fused its spatial step (197 x 197 maps "
        "per frame and head) and found no gain inside the models: VidTr-S x1.00, C-VidTr-S x1.06, VidTr-M "
        "x0.98 (vanilla-S x0.63), although the step alone at VidTr-S's shapes ran 20.5 -> 11.8 ms.",
    ]
    return common.write(
        "fused_attention",
        "Fused against plain attention in PyTorch inference, one process per model",
        columns,
        rows,
        notes=notes,
        backends=("torch",),
        command="python -m benchmarks fused_attention",
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 4 and argv[0] == "--worker":  # the measuring child process
        worker(argv[1], int(argv[2]), int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks fused_attention",
        description="Fused against plain joint attention in PyTorch inference, per model (results/fused_attention.md).",
    )
    parser.add_argument("--quick", action="store_true", help="vanilla-S only, 3 rounds")
    args = parser.parse_args(argv)
    with common.session(quick=args.quick) as ctx:
        ctx.console.print(f"wrote {run(ctx)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
