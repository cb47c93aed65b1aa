"""Speed and memory of VidTr models on every installed backend, against each backend's own matmul peak.

One fresh process per figure (`python -m vidtr_keras.complexity.benchmark`): the backend's float32
matmul peak is measured in that same process, before and after the timed calls; the median and the
spread (min-max) of the timed calls are reported, with the process's peak RSS after compilation and
the memory model's prediction beside it. The machine's load average is recorded for every figure:
wall-clock numbers on a shared machine are only comparable as ratios to the peak measured with them.
"""

import json
import os
import subprocess
import sys

from reproduce import _common

GIB = 2.0**30
PRESETS = ("vanilla_s", "vidtr_s", "cvidtr_s", "vidtr_m")
SCALING = (("vanilla_s", (8, 16)), ("vidtr_s", (8, 16, 32, 64)), ("cvidtr_s", (8, 16, 32, 64)))


def _installed(backend):
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    import importlib.util

    return importlib.util.find_spec(module) is not None


def figure(ctx, bar, backend, timeout=1800, **kwargs):
    """Runs one measurement in a fresh process; returns its result dict (with "error" on failure)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    label = f"{backend} {kwargs['preset']} {kwargs['mode']} {kwargs.get('frames') or ''}".strip()
    if kwargs.get("remat"):
        label += " remat"
    if kwargs.get("mixed_precision"):
        label += " bf16"
    cmd = [sys.executable, "-m", "vidtr_keras.complexity.benchmark", json.dumps(kwargs)]
    result = {"backend": backend, **kwargs, "error": "no result"}
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for line in proc.stdout:
            if line.startswith("PROGRESS "):
                ctx.progress.update(bar, description=f"benchmark: {label}: {line[9:].strip()}")
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        proc.wait(timeout=timeout)
        if proc.returncode != 0 and "seconds" not in result:
            err = proc.stderr.read()[-400:].strip().splitlines()
            result["error"] = f"exit {proc.returncode}: {err[-1] if err else ''}"
    except subprocess.TimeoutExpired:
        proc.kill()
        result["error"] = f"ran past {timeout} s"
    if "error" in result:
        ctx.log(f"[red]{label}: {result['error']}[/red]")
    ctx.advance(bar, f"benchmark: {label} done")
    return result


def _plan(quick, backends, ram_bytes):
    from vidtr_keras.complexity.memory import fits_in_memory

    runs = 2 if quick else 3
    plan = []
    presets = ("vidtr_s",) if quick else PRESETS
    for backend in backends:
        for preset in presets:
            for mode in ("inference", "train"):
                plan.append((backend, dict(preset=preset, mode=mode, runs=runs, warmup=1)))
    lean_backends = backends[:1] if quick else backends
    for backend in lean_backends:
        plan.append((backend, dict(preset="vidtr_s", mode="train", runs=runs, warmup=1, remat=True)))
        if not quick:
            plan.append((backend, dict(preset="vidtr_s", mode="train", runs=runs, warmup=1, mixed_precision=True)))
    skipped = []
    if not quick and backends:
        backend = backends[0]  # scaling in frames on one backend, the fastest in the table above
        for preset, frame_counts in SCALING:
            for frames in frame_counts:
                for remat in (False, True):
                    fit = fits_in_memory(preset, ram_bytes, frames=frames, remat=remat)
                    if not fit.fits:
                        skipped.append((backend, preset, frames, remat, fit.required_bytes))
                        continue
                    kwargs = dict(preset=preset, mode="train", frames=frames, runs=1, warmup=1, remat=remat)
                    plan.append((backend, kwargs))
    return plan, skipped


def run(ctx):
    backends = [b for b in ("tensorflow", "jax", "torch") if _installed(b)]
    ram = _common.machine_info()["ram_gib"] * GIB
    plan, skipped = _plan(ctx.quick, backends, ram)
    bar = ctx.task("benchmark", len(plan))
    results = [figure(ctx, bar, backend, **kwargs) for backend, kwargs in plan]
    load_start = os.getloadavg()

    columns = [
        "backend",
        "preset",
        "mode",
        "frames",
        "remat",
        "bf16",
        "median s",
        "min s",
        "max s",
        "CPU s",
        "GFLOP",
        "GFLOP/s",
        "matmul peak GFLOP/s",
        "% of peak",
        "peak RSS GiB",
        "baseline RSS GiB",
        "model: state GiB",
        "model: activations GiB",
        "model: total GiB",
        "measured / model",
        "load avg (1 min)",
    ]
    rows = []
    for r in results:
        if "seconds" not in r:
            rows.append(
                [
                    r.get("backend"),
                    r.get("preset"),
                    r.get("mode"),
                    r.get("frames"),
                    r.get("remat"),
                    r.get("mixed_precision"),
                ]
                + [None] * 14
                + [r.get("error")]
            )
            continue
        train = r["mode"] == "train"
        predicted = r.get("predicted_bytes")
        ratio = r["peak_rss"] / predicted if train and predicted else None
        rows.append(
            [
                r["backend"],
                r["preset"],
                r["mode"],
                r["frames"],
                r["remat"],
                r["mixed_precision"],
                r["seconds"],
                min(r["runs_s"]),
                max(r["runs_s"]),
                r["cpu_s"],
                r["gflop"],
                r["gflops"],
                r["peak_gflops"],
                r["percent_of_peak"],
                r["peak_rss"] / GIB,
                r["baseline_rss"] / GIB,
                r["state_bytes_model"] / GIB if train else None,
                r["activation_bytes_model"] / GIB if train else None,
                predicted / GIB if predicted else None,
                ratio,
                r["loadavg"][0],
            ]
        )
    for backend, preset, frames, remat, required in skipped:
        rows.append(
            [backend, preset, "train", frames, remat, False] + [None] * 12 + [required / GIB, "does not fit", None]
        )
    notes = [
        "GFLOP: the full analytic count (all matmuls, einsums and the patch convolution; 2 FLOP per "
        "multiply-add) of one call; a training step counts 3x the forward pass. % of peak: achieved "
        "GFLOP/s over the same backend's float32 2048^3 matmul rate measured in the same process "
        "(best of before and after the timed calls).",
        "Training: `compile(SGD(momentum=0.9))` + `train_on_batch`, batch 1, 224x224. Peak RSS: the "
        "process's peak resident memory during the timed steps (the counter is reset after compilation); "
        "model: `vidtr_keras.complexity.fits_in_memory` (runtime 1 GiB + float32 weights, gradients "
        'and momentum + analytic activations x 1.15). "does not fit": predicted above this machine\'s RAM, '
        "not run.",
        f"This machine was shared with other jobs while the table was made (load average "
        f"{load_start[0]:.1f} / {load_start[1]:.1f} / {load_start[2]:.1f} at the end, per figure in the last "
        f"column; it has {os.cpu_count()} cores): absolute times are slower than on an idle machine; "
        "the percentages of peak are the comparable figures, and even they suffer from cache and "
        "core sharing.",
        "Where the JAX training step goes (jax.profiler trace of the compiled VidTr-S step, XLA:CPU with "
        "YNNPACK dot fusions): not the attention einsums (the per-column temporal and per-frame spatial "
        "attention of one block run forward+backward at about the block's matmul efficiency) but XLA's "
        "loop fusions that transpose the residual stream's gradient into the layout of each layer's "
        "weight-gradient matmul (`copy_bitcast_fusion`, [768, tokens]): XLA fuses the whole elementwise "
        "chain of that gradient (every later layer's LayerNorm backward and dropout-mask regeneration, "
        "back to the final norm) into each of them instead of materialising it once, so their cost grows "
        "with depth (quadratically in layers). `jax.lax.optimization_barrier` does not stop it (XLA:CPU "
        "removes barriers before fusion) and keras.ops offers no other fusion fence; dropout's Threefry "
        "bits are a further ~20 ns per element on this CPU.",
        "remat: TensorFlow (`tf.recompute_grad`) and PyTorch (`torch.utils.checkpoint`) keep only each "
        "block's input; XLA:CPU (JAX) merges the recomputation back into the forward pass (its "
        "buffer assignment for the VidTr-S step is the same size with and without remat), so on JAX "
        "remat costs time and saves no memory.",
    ]
    path = _common.write(
        "benchmark",
        "Speed and memory per backend, against each backend's matmul peak",
        columns,
        rows,
        notes=notes,
        backends=backends,
    )
    _plot(results)
    return path


def _plot(results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if "seconds" in r]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    base = [
        r
        for r in ok
        if not r["remat"]
        and not r["mixed_precision"]
        and r["frames"] in (8, 16)
        and r["frames"] == (16 if r["preset"] == "vidtr_m" else 8)
    ]
    labels = sorted({f"{r['preset']} {r['mode']}" for r in base})
    backends = sorted({r["backend"] for r in base})
    width = 0.8 / max(len(backends), 1)
    for i, backend in enumerate(backends):
        values = []
        for label in labels:
            match = [
                r["percent_of_peak"] for r in base if r["backend"] == backend and f"{r['preset']} {r['mode']}" == label
            ]
            values.append(match[0] if match else 0)
        axes[0].bar([j + i * width for j in range(len(labels))], values, width, label=backend)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=30, ha="right")
    axes[0].set_ylabel("% of the backend's matmul peak")
    axes[0].legend()
    axes[0].set_title("achieved / peak (batch 1, 224 px)")
    scaling = [r for r in ok if r["mode"] == "train" and not r["mixed_precision"]]
    for preset in sorted({r["preset"] for r in scaling}):
        for remat in (False, True):
            pts = sorted(
                (r["frames"], r["peak_rss"] / GIB, r["predicted_bytes"] / GIB)
                for r in scaling
                if r["preset"] == preset and r["remat"] == remat and r.get("predicted_bytes")
            )
            if len(pts) < 2:
                continue
            tag = f"{preset}{' remat' if remat else ''}"
            line = axes[1].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{tag} measured")[0]
            axes[1].plot([p[0] for p in pts], [p[2] for p in pts], "--", color=line.get_color(), label=f"{tag} model")
    axes[1].set_xlabel("frames")
    axes[1].set_ylabel("training peak RSS (GiB)")
    axes[1].set_title("training memory vs frames")
    if axes[1].lines:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(_common.RESULTS / "benchmark.png", dpi=120)
    plt.close(fig)
