"""Where VidTr-S inference time goes, per backend: the forward pass's operations at the model's shapes,
each timed alone (`vidtr_keras.complexity.profile.inference_profile`), beside the whole forward pass and the
backend's 2048^3 matmul peak, all measured in one fresh process per backend.

It answers why inference stays below a share of the matmul peak: whether the dense matmuls of the
model's own shapes reach the 2048^3 rate, and how much time goes to what is not a matmul.
Writes results/inference_profile.{md,csv,png} and the raw figures to inference_profile_runs.json.

    python -m benchmarks inference_profile [--quick]
    python -m benchmarks inference_profile --report     the report again from the stored figures
"""

import argparse
import json
import os
import sys

from reproduce import common

PRESET = "vidtr_s"
TIMEOUT_S = 1800  # one backend's process


def worker(preset, runs):
    """Runs in a fresh process with KERAS_BACKEND set: a PROGRESS line per measured row, then one RESULT
    line with every row and the matmul peak."""
    import dataclasses

    from vidtr_keras.complexity.benchmark import matmul_peak
    from vidtr_keras.complexity.profile import inference_profile

    before = matmul_peak()
    rows = inference_profile(preset, runs=runs, on_row=lambda r: print("PROGRESS " + r.name, flush=True))
    after = matmul_peak()
    print("RESULT " + json.dumps({"peak": max(before, after), "rows": [dataclasses.asdict(r) for r in rows]}))


def _measure(ctx, bar, backend, preset, runs):
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import run_child

    cmd = [common.python_executable(), "-m", "benchmarks.inference_profile", "--worker", preset, str(runs)]
    name = f"the {backend} inference profile"
    result = run_child(
        cmd,
        env=child_env(backend),
        cwd=common.ROOT,
        timeout=TIMEOUT_S,
        on_progress=lambda text: ctx.progress.update(bar, description=f"inference profile [{backend}]: {text}"),
        name=name,
    ).result
    if result is None:
        raise RuntimeError(f"{name} printed no RESULT line.")
    result["load"] = os.getloadavg()[0]
    ctx.advance(bar, f"inference profile [{backend}] done")
    return result


def summary(result):
    """The figures that explain the forward pass's share of the peak (one backend's stored result)."""
    from vidtr_keras.complexity.profile import summary as profile_summary

    return profile_summary(result["rows"], result["peak"])


def _plot(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(results)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    labels = ["model-shaped matmuls alone", "encoder operations, summed", "whole forward pass"]
    keys = ["matmul_pct", "ops_pct", "whole_pct"]
    width = 0.25
    for i, (label, key) in enumerate(zip(labels, keys)):
        values = [summary(results[b])[key] for b in backends]
        ax.bar([x + (i - 1) * width for x in range(len(backends))], values, width, label=label)
    ax.axhline(80, color="k", ls="--", lw=0.8)
    ax.text(len(backends) - 0.5, 81, "80 % target", fontsize=7, ha="right")
    ax.set_xticks(range(len(backends)), backends)
    ax.set_ylabel("% of the backend's 2048^3 matmul peak")
    ax.set_title(f"{PRESET} inference, batch 1: where the share of the peak is lost", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results, runs):
    columns = [
        "backend",
        "operation",
        "shapes",
        "runs per forward",
        "ms per run",
        "ms per forward",
        "GFLOP/s",
        "% of matmul peak",
        "kind",
    ]
    rows = []
    for backend, result in results.items():
        for r in result["rows"]:
            rate = r["flop"] / r["seconds"] / 1e9 if r["flop"] else None
            rows.append(
                [
                    backend,
                    r["name"],
                    r["shapes"],
                    r["count"],
                    r["seconds"] * 1e3,
                    r["count"] * r["seconds"] * 1e3,
                    rate,
                    None if rate is None else 100 * rate / result["peak"],
                    r["kind"],
                ]
            )
    lines = []
    for backend, result in results.items():
        s = summary(result)
        lines.append(
            f"- **{backend}** (2048^3 matmul peak {s['peak']:.0f} GFLOP/s in the same process, load "
            f"{result['load']:.1f}): whole forward {s['whole_s'] * 1e3:.0f} ms = **{s['whole_pct']:.0f} %** of "
            f"peak; the model-shaped dense matmuls alone run at **{s['matmul_pct']:.0f} %** of peak "
            f"({s['matmul_s'] * 1e3:.0f} ms a forward); the encoder's operations, each timed alone and summed, take "
            f"{s['ops_s'] * 1e3:.0f} ms ({s['ops_pct']:.0f} % of peak for the forward's FLOPs), of which "
            f"{s['not_matmul_s'] * 1e3:.0f} ms are not matmuls (LayerNorm, bias and residual adds, the "
            "activation, the attention softmax and its small batched matmuls)."
        )
    notes = [
        "## What limits inference",
        "\n".join(lines),
        "![share of peak](inference_profile.png)",
        "How to read it: a forward pass can reach the 2048^3 peak only if its matmuls run at that rate and "
        'nothing else takes time. "model-shaped matmuls alone" is the first limit (the qkv, output and '
        "MLP matmuls at the model's token count and widths, compiled alone: smaller and thinner than "
        '2048^3, so below its rate); "encoder operations, summed" adds the time of everything else at its '
        "real shapes; the whole forward pass is the measured `predict_on_batch`. The 80 % "
        "inference target is reachable only where the first bar is well above 80 %.",
        f"Setup: {PRESET}, batch 1, its preset clip (8 frames of 224x224), float32; each operation "
        f"compiled alone the way the backend runs inference (`jax.jit`; `tf.function` without XLA, as "
        f"Keras does on a CPU-only machine; eager PyTorch under `no_grad`), median of {runs} runs after a "
        "warm-up; one fresh process per backend, one after another. The operations run at the model's "
        "shapes with random values (`vidtr_keras.complexity.inference_profile`); "
        "GFLOP counts 2 per multiply-add.",
    ]
    _plot(common.RESULTS / "inference_profile.png", results)
    return common.write(
        "inference_profile",
        f"Where {PRESET} inference time goes, per backend",
        columns,
        rows,
        notes=notes,
        backends=tuple(results),
        command="python -m benchmarks inference_profile",
    )


def run(ctx):
    runs = 3 if ctx.quick else 5
    backends = common.installed_backends()
    bar = ctx.task("inference profile", len(backends))
    results = {b: _measure(ctx, bar, b, PRESET, runs) for b in backends}
    common.RESULTS.mkdir(exist_ok=True)
    (common.RESULTS / "inference_profile_runs.json").write_text(
        json.dumps({"runs": runs, "results": results}, indent=1)
    )
    return report(results, runs)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 3 and argv[0] == "--worker":  # the measuring child process
        worker(argv[1], int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks inference_profile",
        description="Where VidTr-S inference time goes, per backend (results/inference_profile.md).",
    )
    parser.add_argument("--quick", action="store_true", help="3 timed runs per operation instead of 5")
    parser.add_argument("--report", action="store_true", help="rewrite the report from the stored figures")
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads((common.RESULTS / "inference_profile_runs.json").read_text())
        print(report(saved["results"], saved["runs"]))
        return 0
    with common.session(quick=args.quick) as ctx:
        ctx.console.print(f"wrote {run(ctx)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
