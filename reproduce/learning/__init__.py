"""Does it learn? The paper's accuracy claims at small scale, on the procedural temporal-reasoning
benchmark (`vidtr_keras.data.procedural`): every variant x task x seed trained from scratch at tiny
width on the CPU, top-1 with 95 % intervals, training memory and FLOPs, the paper's qualitative
claims checked one by one, and attention rollouts of trained models.

    python -m reproduce learning [--quick]         train, then write results/learning.{md,csv,png}
    python -m reproduce.learning --report [TASK ...]   the report again from results/learning_runs.json
    python -m reproduce.learning --rerun-task TASK     train one task again and rewrite the report

The package, one concept a module: `recipe` (tasks, variants, data sizes, the one schedule),
`baseline` (the Conv3D), `worker` (the training processes: variants dealt out to spec["workers"]
TensorFlow processes running at once), `sensitivity` (frame-order sensitivity of untrained models and
the easy-regime experiment), `claims` (intervals and the paper's claims), `plots`, `report`.
"""

import json
import time

from reproduce import common
from reproduce.learning.recipe import FULL, QUICK
from reproduce.learning.report import report
from reproduce.learning.sensitivity import run_easy
from reproduce.learning.worker import run_workers


def run(ctx):
    spec = dict(QUICK if ctx.quick else FULL)
    spec["tasks"] = list(spec["tasks"])
    spec["variants"] = list(spec["variants"])
    spec["rollouts"] = str(common.RESULTS / "learning_rollouts.npz")
    common.RESULTS.mkdir(exist_ok=True)
    total = len(spec["variants"]) * len(spec["tasks"]) * spec["seeds"]
    start = time.perf_counter()
    runs = run_workers(ctx, spec, total)
    minutes = (time.perf_counter() - start) / 60
    raw = common.RESULTS / "learning_runs.json"
    raw.write_text(json.dumps({"spec": spec, "minutes": minutes, "runs": runs}, indent=1))
    easy = run_easy(1 if ctx.quick else 3)
    raw.write_text(json.dumps({"spec": spec, "minutes": minutes, "runs": runs, "easy": easy}, indent=1))
    return report(ctx, spec, runs, minutes, easy)


def rerun_task(ctx, task):
    """Trains every variant of the stored run again on one task (its spec otherwise unchanged), replaces
    that task's runs in results/learning_runs.json (the replaced ones are kept under "superseded", with
    the reason) and rewrites the report. For a task whose data changed since the full run."""
    path = common.RESULTS / "learning_runs.json"
    saved = json.loads(path.read_text())
    spec = dict(saved["spec"], tasks=[task], rollouts=None)
    if task not in saved["spec"]["tasks"]:
        raise SystemExit(f"The stored run has no task {task!r} (it has {', '.join(saved['spec']['tasks'])}).")
    start = time.perf_counter()
    runs = run_workers(ctx, spec, len(spec["variants"]) * spec["seeds"])
    minutes = (time.perf_counter() - start) / 60
    old = [r for r in saved["runs"] if r["task"] == task]
    saved.setdefault("superseded", []).extend(old)
    saved["runs"] = [r for r in saved["runs"] if r["task"] != task] + [dict(r, rerun=True) for r in runs]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    saved.setdefault("reruns", []).append({"task": task, "minutes": minutes, "date": when})
    saved["minutes"] = saved["minutes"] - sum(r["seconds"] for r in old) / 60 + minutes
    path.write_text(json.dumps(saved, indent=1))
    return report(ctx, saved["spec"], saved["runs"], saved["minutes"], saved.get("easy"), saved.get("reruns"))
