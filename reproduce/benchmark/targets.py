"""The performance targets, each checked against the benchmark's figures: one markdown line per target
with the figures it is judged on (the head of results/benchmark.md)."""

import statistics

from reproduce import common

GIB = 2.0**30


def measured_activations(r):
    """Training activations as measured: peak RSS - RSS before the model - the state the model holds
    (float32 weights, gradients, momentum; `state_bytes_model`). Includes the runtime's workspace."""
    return r["peak_rss"] - r["baseline_rss"] - r["state_bytes_model"]


# The reference figures of the targets (same machine type, batch 1, 8 x 224 x 224, SGD momentum, before the
# performance work): the
# "no slower than today" references for the joint and compact models' training steps.
# The matmul peaks measured in that run (GFLOP/s), to compare as % of peak: this run's machine may differ.
BEFORE_PEAK = {"tensorflow": 424.0, "jax": 474.0, "torch": 213.0}
BEFORE_TRAIN_S = {
    ("tensorflow", "vanilla_s"): 4.5,
    ("jax", "vanilla_s"): 14.5,
    ("torch", "vanilla_s"): 15.6,
    ("tensorflow", "cvidtr_s"): 1.42,
    ("jax", "cvidtr_s"): 1.98,
    ("torch", "cvidtr_s"): 2.46,
}


def _find(results, backend=None, **match):
    for r in results:
        if "seconds" not in r or (backend and r["backend"] != backend):
            continue
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def _before_and_now():
    """{(backend, preset): {"before": [s, ...], "now": [s, ...], "ref": sha}} from the same-machine
    comparisons of `python -m benchmarks before` (results/benchmark_before*.csv; each value
    is one process's median step)."""
    import csv

    pairs = {}
    for path in sorted(common.RESULTS.glob("benchmark_before*.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("median s"):
                    continue
                version, _, sha = row["version"].partition(" ")
                entry = pairs.setdefault((row["backend"], row["preset"]), {"before": [], "now": [], "ref": ""})
                entry[version].append(float(row["median s"]))
                if version == "before":
                    entry["ref"] = sha.split()[0]
    return {key: value for key, value in pairs.items() if value["before"] and value["now"]}


def _verdict(ok):
    return "**met**" if ok else "**not met**"


def targets(results):
    """One markdown line per performance target, with the figures it is judged on."""
    lines = []
    backends = sorted({r["backend"] for r in results if "seconds" in r})
    base = dict(preset="vidtr_s", frames=8, remat=False, mixed_precision=False)
    for mode, goal in (("inference", 80.0), ("train", 60.0)):
        for backend in backends:
            r = _find(results, backend, mode=mode, **base)
            if r is None:
                lines.append(f"- VidTr-S {mode} on {backend} >= {goal:.0f}% of peak: not measured in this run")
                continue
            ok = r["percent_of_peak"] >= goal
            lines.append(
                f"- VidTr-S {mode} on {backend} >= {goal:.0f}% of its matmul peak: {_verdict(ok)} "
                f"({r['percent_of_peak']:.0f}%, {r['seconds']:.2f} s, load {r['loadavg'][0]:.1f})"
            )
    for backend in backends:
        plain = _find(results, backend, mode="train", **base)
        lean = _find(results, backend, mode="train", **dict(base, remat=True))
        if plain and lean:
            a, b = measured_activations(plain), measured_activations(lean)
            ratio = a / b if b > 0 else float("inf")
            lines.append(
                f"- VidTr-S training activations >= 2x lower with remat on {backend}: {_verdict(ratio >= 2)} "
                f"({a / GIB:.2f} -> {b / GIB:.2f} GiB measured, {ratio:.1f}x; step {plain['seconds']:.1f} -> "
                f"{lean['seconds']:.1f} s)"
            )
    long = [
        r for r in results if "seconds" in r and r["preset"] == "vidtr_s" and r["mode"] == "train" and r["frames"] == 64
    ]
    if not long:
        lines.append("- a 64-frame VidTr-S training step on this machine: not run (predicted not to fit, or failed)")
    for r in long:
        ratio = r["peak_rss"] / r["predicted_bytes"]
        lines.append(
            f"- a 64-frame 224x224 VidTr-S training step runs here{' with remat' if r['remat'] else ''}, memory "
            f"within 15% of the model: {_verdict(abs(ratio - 1) <= 0.15)} (peak RSS {r['peak_rss'] / GIB:.1f} GiB, "
            f"model {r['predicted_bytes'] / GIB:.1f} GiB, {ratio:.2f}x; {r['seconds']:.0f} s per step)"
        )
    same_machine = _before_and_now()
    for (backend, preset), before in BEFORE_TRAIN_S.items():
        r = _find(results, backend, preset=preset, mode="train", frames=8, remat=False, mixed_precision=False)
        if r is None:
            continue
        before_pct = 100.0 * r["gflop"] / before / BEFORE_PEAK[backend]
        reference = (
            f"the reference figure, from another machine: {before} s = {before_pct:.0f}% of a "
            f"{BEFORE_PEAK[backend]:.0f} GFLOP/s peak; this table: {r['seconds']:.2f} s = "
            f"{r['percent_of_peak']:.0f}% of {r['peak_gflops']:.0f} GFLOP/s, load {r['loadavg'][0]:.1f}"
        )
        pairs = same_machine.get((backend, preset))
        if pairs:
            old = statistics.median(pairs["before"])
            new = statistics.median(pairs["now"])
            runs = len(pairs["before"]) + len(pairs["now"])
            lines.append(
                f"- {preset} training step on {backend} no slower than before (the old code, {pairs['ref']}, "
                f"timed on this machine in the same run as the current code, {runs} processes, "
                f"[benchmark_before.md](benchmark_before.md); within 10 %): {_verdict(new <= 1.10 * old)} "
                f"(median {old:.2f} s before, {new:.2f} s now, x{new / old:.2f}; {reference})"
            )
        else:
            lines.append(
                f"- {preset} training step on {backend} no slower than before, as % of the backend's matmul peak "
                f"({reference}): {_verdict(r['percent_of_peak'] >= before_pct * 0.95)}"
            )
    lines += _against_official()
    for backend in backends:
        plain = _find(results, backend, mode="train", **base)
        half = _find(results, backend, mode="train", **dict(base, mixed_precision=True))
        if plain and half:
            lines.append(
                f"- mixed_bfloat16 on {backend} (measured, no target): step {plain['seconds']:.1f} -> "
                f"{half['seconds']:.1f} s, peak RSS {plain['peak_rss'] / GIB:.2f} -> {half['peak_rss'] / GIB:.2f} GiB"
            )
    return lines


def _against_official():
    """One line per model and mode of `python -m benchmarks official` (results/official.csv: ours on
    PyTorch against the official code, alternating processes in one run of its own): met when ours
    takes at most the official time (wall, median over the rounds)."""
    import csv

    path = common.RESULTS / "official.csv"
    if not path.exists():
        return ["- PyTorch at or ahead of the official code: not measured (`python -m benchmarks official`)"]
    info = common.read_header_info(common.RESULTS / "official.md") or {}
    where = f"{info.get('cpu', '?')}, {info.get('date', '?')}"
    lines = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            name = f"{row['preset']} {row['mode']}"
            if not row["ours / official (wall)"]:
                lines.append(f"- PyTorch at or ahead of the official code, {name}: no figure ({row['error']})")
                continue
            wall, cpu = float(row["ours / official (wall)"]), float(row["ours / official (CPU)"])
            lines.append(
                f"- PyTorch at or ahead of the official code (amazon-science/gluonmm on the same torch, measured "
                f"in one run of its own, [official.md](official.md), {where}), {name}: {_verdict(wall <= 1.0)} "
                f"(official {float(row['official s']):.2f} s, ours {float(row['ours s']):.2f} s: x{wall:.2f} wall, "
                f"x{cpu:.2f} CPU time)"
            )
    return lines
