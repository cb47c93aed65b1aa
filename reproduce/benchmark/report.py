"""results/benchmark.{md,csv,png}: the table of every figure, the notes that explain them, the plot.

Written from the figures `python -m reproduce benchmark` measured (results/benchmark_runs.json keeps
them), so `python -m reproduce.benchmark --report` rewrites the report without measuring again.
"""

import json
import os

from reproduce import common
from reproduce.benchmark.targets import GIB, measured_activations, targets


def _fit(preset, frames, remat, mixed_precision=False):
    from vidtr_keras.complexity.memory import fits_in_memory

    return fits_in_memory(preset, 1 << 50, frames=frames, remat=remat, mixed_precision=mixed_precision)


def _with_current_model(r):
    """A figure with its memory-model columns recomputed by the current model (the run's own stay
    under `*_at_run`)."""
    if r.get("mode") != "train" or not r.get("preset"):
        return r
    fit = _fit(r["preset"], r.get("frames", 8), bool(r.get("remat")), bool(r.get("mixed_precision")))
    r = dict(r)
    for key, value in (
        ("predicted_bytes", fit.required_bytes),
        ("activation_bytes_model", fit.activation_bytes),
        ("state_bytes_model", fit.state_bytes),
    ):
        r.setdefault(f"{key}_at_run", r.get(key))
        r[key] = value
    return r


def _error_text(r):
    """A failed figure's error; a SIGKILL (the kernel's out-of-memory killer here) said as such, not as
    the last line the process happened to print."""
    error = r.get("error") or ""
    if error.startswith("exit -9"):
        return "killed (signal 9: out of memory)"
    return error


def _skipped_now(backend, preset, frames, remat, required):
    return backend, preset, frames, remat, _fit(preset, frames, remat).required_bytes


def write_report(results, skipped, backends, load_start, info=None):
    """results/benchmark.{md,csv,png} from the figures (`python -m reproduce.benchmark --report` rewrites
    them from results/benchmark_runs.json without measuring again). The memory model's figures are
    recomputed here with the current `fits_in_memory` (it is analytic), so a report made after a change
    of the model compares the stored measurements with the model as it is now. `info`: the machine and
    versions of the run that measured the figures (`common.machine_info()`), for the header."""
    results = [_with_current_model(r) for r in results]
    skipped = [_skipped_now(*s) for s in skipped]

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
        "measured: activations GiB",
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
                + [None] * 13
                + [r["predicted_bytes"] / GIB if r.get("predicted_bytes") else None, _error_text(r), None]
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
                measured_activations(r) / GIB if train else None,
                r["activation_bytes_model"] / GIB if train else None,
                predicted / GIB if predicted else None,
                ratio,
                r["loadavg"][0],
            ]
        )
    for backend, preset, frames, remat, required in skipped:
        rows.append(
            [backend, preset, "train", frames, remat, False] + [None] * 13 + [required / GIB, "does not fit", None]
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
        "not run. "
        "The model columns come from the memory model as it is when this report is written (it is analytic; "
        "benchmark_runs.json keeps the predictions made at run time): since the run, the rematerialised "
        "estimate counts the gradients of the block being recomputed, which the stored runs showed missing "
        "(C-VidTr-S at 32 frames with remat: 8.6 GiB measured, 5.6 predicted before, 8.5 now; the 64-frame "
        "run the old model let through was killed for memory, and is now predicted not to fit).",
        f"This machine was shared with other jobs while the table was made (load average "
        f"{load_start[0]:.1f} / {load_start[1]:.1f} / {load_start[2]:.1f} at the end, per figure in the last "
        f"column; it has {os.cpu_count()} cores): absolute times are slower than on an idle machine; "
        "the percentages of peak are the comparable figures, and even they suffer from cache and "
        "core sharing.",
        "Where the JAX training step goes (jax.profiler trace of the compiled VidTr-S step, XLA:CPU with "
        "YNNPACK dot fusions). Before the fix: about half of the step in XLA's loop fusions that transpose "
        "the residual stream's gradient into the layout of each layer's weight-gradient matmul "
        "(`copy_bitcast_fusion`, [768, tokens]): XLA fused the whole elementwise chain of that gradient "
        "(every later layer's LayerNorm backward and residual add, back to the final norm) into each of its "
        "consumers instead of computing it once, so their cost grew with the square of the depth (the "
        "widest fusion of a tiny model's step: 90, 164, 312 inputs at depth 2, 4, 8). "
        "`jax.lax.optimization_barrier` does not stop it (XLA:CPU removes barriers before fusion), but XLA "
        "never fuses a dot into its consumers: on JAX on CPU each encoder block now passes its input and its "
        "MLP's input through an identity whose gradient is an exact identity matmul over 8-channel groups "
        "(`vidtr_keras.backends.xla_cpu.gradient_fence`, 16 multiply-adds per value), and the widest "
        "fusion no longer grows with depth. Measured on the idle machine with `complexity.measure.make_training_step` "
        "(plain SGD, median of 3 steps): VidTr-S step 11.1 -> 6.5 s, C-VidTr-S 3.4 -> 2.8 s, "
        "vanilla-S 17.1 s with it. What is left is mostly the matmuls (dots about 70 % of the step now). "
        "In the trace the backward dots look twice as slow as the forward ones (MLP: 62-72 ms against "
        "32-36 ms per layer), but XLA runs each layer's data-gradient and weight-gradient dots at the same "
        "time, each on part of the cores; alone, at the MLP's shapes (1773 x 768 x 3072), the forward, "
        "data-gradient (dY @ W^T) and weight-gradient dots all run at 190-270 GFLOP/s, the rate of the "
        "model-shaped matmuls in the inference profile, below the 2048^3 peak. "
        "Dropout's Threefry bits: `vidtr train` and this benchmark lower them on JAX as straight-line code "
        "(`vidtr_keras.backends.jax_rng`, the same bits): a (9, 197, 3072) mask 262 -> 43 ms and the "
        "VidTr-S step's peak memory 25% lower (dropout off altogether: 6.2 s against 6.5). XLA flags tried "
        "without gain, with the fence in place: YNNPACK dot fusions off (Eigen dots, 7.9 s), oneDNN dot "
        "fusions (7.2 s), XNNPACK dot fusions (8.4 s); before it: the concurrency-optimised scheduler, "
        "fusion emitters off, 512-bit vectors, fast math (not exact anyway).",
        "`keras.ops.dot_product_attention`, measured per backend at VidTr's shapes (wanted where it is exact and "
        "faster): on PyTorch it is `scaled_dot_product_attention`, which never writes the "
        "attention map; the vanilla model's joint attention ran 150 -> 50 ms per layer with it and vanilla-S "
        "inference x0.63-0.73 ([fused_attention.md](fused_attention.md), one process per model, fused and "
        "plain interleaved), so joint attention uses it on PyTorch wherever the probabilities are neither "
        "returned nor dropped out (inference; training only without attention dropout). Separable "
        "attention's spatial step alone ran 20.5 -> 11.8 ms fused at VidTr-S's shapes, but the models did "
        "not get faster (VidTr-S x1.00, C-VidTr-S x1.06, VidTr-M x0.98), so it stays plain. On JAX (XLA's "
        "attention is the same einsum-softmax-einsum) and TensorFlow (Keras' own composite) the fused call "
        "ran no faster, and both keep the plain form. The PyTorch inference rows were re-measured after this; "
        "the separable models' code is the same as in the full run, where VidTr-S measured 2.36 s = 61 % of "
        "the peak: the difference to its row here is the spread between runs of this machine.",
        "Where the PyTorch training step goes (torch.profiler, self CPU time of one VidTr-S step, plain SGD, "
        "2 threads, 7.2 s step, 6.2 s of operator time): the dense matmuls (`aten::mm`, 149 calls) 3.56 s, "
        "at about the backend's own matmul rate; dropout's random masks (`aten::bernoulli_`, 61 calls) "
        "1.40 s, about a fifth of the step; the attention's batched matmuls 0.30 s; elementwise work "
        "(mul, add, copies, softmax, LayerNorm) about 0.7 s. So the 60 % target is held by PyTorch's CPU "
        "random-number generation: without dropout the same step would be about 5.7 s (about 70 % of the "
        "peak). Drawing the masks as `torch.rand(...) >= rate` instead is 1.5-1.6x faster at these shapes "
        "(a (9, 197, 3072) mask 74 -> 46 ms; through keras.random.uniform 64 ms), not enough to reach the "
        "target, and it would change every PyTorch dropout mask, so Keras' dropout is kept.",
        "remat: TensorFlow (`tf.recompute_grad`) and PyTorch (`torch.utils.checkpoint`) keep only each "
        "block's input. On JAX the full run's remat row saved nothing: XLA's CPU compiler removes "
        "jax.checkpoint's optimization barriers early (its `cse_barrier_expander` pass) and "
        "common-subexpression elimination then merges the recomputation into the forward pass (the "
        "buffer assignment of the VidTr-S step was the same size with and without remat). `import "
        "vidtr_keras` now disables that one pass through XLA_FLAGS on a CPU-only JAX "
        "(`vidtr_keras.backends.xla_cpu`; XLA reads the flag when JAX starts, and a remat model warns when it "
        "is missing), and the re-measured JAX remat row keeps only each block's input: VidTr-S training "
        "activations 1.82 -> 0.32 GiB, as the memory model predicts. On PyTorch remat saved nothing in "
        "the full run because "
        "torch's checkpoint stops each recomputation by raising an exception through Keras' error handler, "
        "whose re-raised exception sat in a reference cycle that kept the recomputed activations alive until "
        "a cyclic garbage collection; the encoder now turns Keras' traceback filtering off inside a "
        "rematerialised block, and the re-measured PyTorch rows show the saving.",
    ]
    for note in (_jax_profile_note(), _inference_profile_note()):
        if note:
            notes.insert(0, note)
    notes.insert(0, "\n".join(["## The performance targets, checked on this run", ""] + targets(results)))
    notes.insert(1, "## Every figure")
    again = sorted({(r["backend"], r["preset"], r["mode"]) for r in results if r.get("rerun")})
    if again:
        notes.insert(
            2,
            "Measured again after the full run (`python -m reproduce.benchmark --rerun BACKEND PRESET`, every "
            "flavour of the figure in one session, on the idle machine; the figures they replace are kept in "
            "benchmark_runs.json under `superseded`): " + ", ".join(" ".join(k) for k in again) + ".",
        )
    path = common.write(
        "benchmark",
        "Speed and memory per backend, against each backend's matmul peak",
        columns,
        rows,
        notes=notes,
        backends=backends,
        info=info,
    )
    _plot(results)
    return path


def _inference_profile_note():
    """Why inference stays where it is, from the stored `python -m benchmarks inference_profile` run
    (None if there is none)."""
    path = common.RESULTS / "inference_profile_runs.json"
    if not path.exists():
        return None
    from vidtr_keras.complexity.profile import summary

    saved = json.loads(path.read_text())
    parts = []
    for backend, result in saved["results"].items():
        s = summary(result["rows"], result["peak"])
        parts.append(
            f"{backend}: model-shaped matmuls alone {s['matmul_pct']:.0f} %, the encoder's operations summed "
            f"{s['ops_pct']:.0f} %, the whole forward {s['whole_pct']:.0f} % of the peak measured with them"
        )
    return (
        "Where VidTr-S inference time goes ([inference_profile.md](inference_profile.md), "
        "`python -m benchmarks inference_profile`, its own run): " + "; ".join(parts) + ". The dense matmuls "
        "at the model's own shapes (1773 tokens, width 768) are the ceiling of the inference share of peak; "
        "the rest (the spatial attention's 108 small batched 197x197 matmuls and softmax, the temporal "
        "attention's 2364 tiny 9x9 ones, LayerNorm, bias and residual adds) runs far below the matmul rate. "
        "The spatial step was an einsum over the (batch, frame, patch, head) layout, which XLA ran 2x slower "
        "than the batched matmuls it now is (JAX: 523 -> 237 ms of the forward pass in the profile)."
    )


def _jax_profile_note():
    """Where the JAX training step's time goes, from the stored `python -m benchmarks jax_profile` run
    (None if there is none): each model's largest categories, as shares of its profiled step."""
    path = common.RESULTS / "jax_profile_runs.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    info = common.read_header_info(common.RESULTS / "jax_profile.md") or {}
    parts = []
    for result in saved["results"]:
        total = result["thunk_s"]
        if not total:
            continue
        shares = {}
        for row in result["rows"]:
            shares[row["category"]] = shares.get(row["category"], 0.0) + row["seconds"]
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:4]
        parts.append(
            f"{result['preset']} ({total:.1f} s of XLA thunks per step): "
            + ", ".join(f"{name} {100 * seconds / total:.0f} %" for name, seconds in top)
        )
    return (
        "Where the JAX training step goes now ([jax_profile.md](jax_profile.md), `python -m benchmarks "
        f"jax_profile`, its own run on {info.get('cpu', '?')}, {info.get('date', '?')}; one compiled step per "
        "model, traced with jax.profiler, XLA's thunks put in categories from the compiled HLO): "
        + "; ".join(parts)
        + ". The separable models are bound by the dense matmuls; the joint model spends its time in the "
        "attention maps (batched dots over the 1569 x 1569 map per head, far below the matmul rate), the "
        "softmax backward and dropout's random masks."
    )


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
    fig.savefig(common.RESULTS / "benchmark.png", dpi=120)
    plt.close(fig)


def stored_machine(saved):
    """The machine of a stored run (results/benchmark_runs.json): saved with the figures, or, for a run
    stored before it was, read from the header of the report that run wrote."""
    return saved.get("machine") or common.read_header_info(common.RESULTS / "benchmark.md")
