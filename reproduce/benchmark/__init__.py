"""Speed and memory of VidTr models on every installed backend, against each backend's own matmul peak.

One fresh process per figure (`python -m vidtr_keras.complexity.benchmark`): the backend's float32
matmul peak is measured in that same process, before and after the timed calls; the median and the
spread (min-max) of the timed calls are reported, with the process's peak RSS after compilation and
the memory model's prediction beside it. The machine's load average is recorded for every figure:
wall-clock numbers on a shared machine are only comparable as ratios to the peak measured with them.

    python -m reproduce benchmark [--quick]                          measure, then write the report
    python -m reproduce.benchmark --report                           the report again from the stored figures
    python -m reproduce.benchmark --rerun BACKEND PRESET [MODE [FRAMES]]   measure some figures again

This module plans and measures; `report` writes results/benchmark.{md,csv,png}; `targets` checks the
performance targets against the figures.
"""

import json
import os
import sys

from reproduce import common
from reproduce.benchmark.report import stored_machine, write_report

GIB = 2.0**30
PRESETS = ("vanilla_s", "vidtr_s", "cvidtr_s", "vidtr_m")
SCALING = (("vanilla_s", (8, 16)), ("vidtr_s", (8, 16, 32, 64)), ("cvidtr_s", (8, 16, 32, 64)))


def figure(ctx, bar, backend, timeout=1800, **kwargs):
    """Runs one measurement in a fresh process; returns its result dict (with "error" on failure)."""
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import ChildTimeout, run_child

    label = f"{backend} {kwargs['preset']} {kwargs['mode']} {kwargs.get('frames') or ''}".strip()
    if kwargs.get("remat"):
        label += " remat"
    if kwargs.get("mixed_precision"):
        label += " bf16"
    cmd = [sys.executable, "-m", "vidtr_keras.complexity.benchmark", json.dumps(kwargs)]
    result = {"backend": backend, **kwargs, "error": "no result"}
    try:
        run = run_child(
            cmd,
            env=child_env(backend),
            timeout=timeout,
            on_progress=lambda text: ctx.progress.update(bar, description=f"benchmark: {label}: {text}"),
            name=f"benchmark {label}",
            check=False,  # a figure that printed its result and then failed to exit is still a figure
        )
        if run.result is not None:
            result = run.result
        if run.returncode != 0 and "seconds" not in result:
            result["error"] = f"exit {run.returncode}: {run.last_line}"
    except ChildTimeout:
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
    backends = common.installed_backends()
    ram = common.machine_info()["ram_gib"] * GIB
    info = common.machine_info()
    plan, skipped = _plan(ctx.quick, backends, ram)
    bar = ctx.task("benchmark", len(plan))
    results = [figure(ctx, bar, backend, **kwargs) for backend, kwargs in plan]
    common.RESULTS.mkdir(exist_ok=True)
    load_start = os.getloadavg()
    with open(common.RESULTS / "benchmark_runs.json", "w") as f:  # the raw figures, before any formatting
        json.dump(
            {"results": results, "skipped": skipped, "backends": backends, "loadavg": load_start, "machine": info},
            f,
            indent=1,
        )
    return write_report(results, skipped, backends, load_start, info)


def rerun(ctx, backend, preset, mode="train", frames=None):
    """Measures again the stored figures of (backend, preset, mode[, frames]), every remat / bf16 flavour
    of them, interleaved in one session so that the ones compared see the same load, replaces them in
    results/benchmark_runs.json (the replaced ones are kept under "superseded") and rewrites the report.
    For a figure whose code changed since the full run (a fix of a backend's code path since the full run)."""
    path = common.RESULTS / "benchmark_runs.json"
    saved = json.loads(path.read_text())
    info = stored_machine(saved)
    here = common.machine_info()
    if info and (info["cpu"], info["cores"]) != (here["cpu"], here["cores"]):
        raise SystemExit(
            f"The stored figures were measured on {info['cpu']} ({info['cores']} cores); figures from this "
            f"machine ({here['cpu']}, {here['cores']} cores) would mix two machines in one table. Measure the "
            "whole table here with `python -m reproduce benchmark`."
        )
    chosen = [
        i
        for i, r in enumerate(saved["results"])
        if r.get("backend") == backend
        and r.get("preset") == preset
        and r.get("mode") == mode
        and (frames is None or r.get("frames") == frames)
    ]
    if not chosen:
        raise SystemExit(f"No stored figure of {backend} {preset} {mode} {frames or ''} in {path}.")
    keys = ("preset", "mode", "frames", "remat", "mixed_precision", "runs", "warmup")
    bar = ctx.task("benchmark (rerun)", len(chosen))
    saved.setdefault("superseded", [])
    for i in chosen:
        old = saved["results"][i]
        kwargs = {k: old[k] for k in keys if old.get(k) is not None}
        kwargs.setdefault("runs", 3)
        kwargs.setdefault("warmup", 1)
        new = figure(ctx, bar, backend, **kwargs)
        new["rerun"] = True
        saved["superseded"].append(old)
        saved["results"][i] = new
    saved["machine"] = info
    path.write_text(json.dumps(saved, indent=1))
    return write_report(saved["results"], saved["skipped"], saved["backends"], saved["loadavg"], info)
