"""Does it learn? The paper's accuracy claims at small scale, on the procedural temporal-reasoning
benchmark (`vidtr_keras.data.procedural`): every variant x task x seed trained at tiny width on the CPU
in two regimes, from scratch and from an image ViT pretrained on fractal images (`vidtr pretrain-images`)
and inflated as the paper inflates ImageNet weights; top-1 with 95 % intervals, a shuffled-frames
control (the same models on clips whose frames are permuted), training memory and FLOPs, the paper's
qualitative claims decided one by one in each regime, and attention rollouts of trained models.

    python -m reproduce learning [--quick]         train, then write results/learning.{md,csv,png}
    python -m reproduce.learning --report [TASK ...]   the report again from results/learning_runs.json
    python -m reproduce.learning --rerun-task TASK     train one task again and rewrite the report

The package, one concept a module: `recipe` (tasks, variants, regimes, data sizes, the one schedule),
`pretrain` (the pretrained regime's image ViT),
`baseline` (the Conv3D), `worker` (the training processes: variants dealt out to spec["workers"]
TensorFlow processes running at once), `sensitivity` (frame-order sensitivity of untrained models and
the easy-regime experiment), `claims` (intervals and the paper's claims), `plots`, `report`.
"""

import json
import os
import time

from reproduce import common
from reproduce.learning.pretrain import ensure_vit, vit_path
from reproduce.learning.recipe import FULL, PRETRAINED, QUICK, TASK_NAMES
from reproduce.learning.report import report
from reproduce.learning.sensitivity import run_easy
from reproduce.learning.worker import members_of, partial_runs, run_workers, spec_key


def _stored_easy():
    """The easy-regime experiment of the stored run, if any (it does not depend on the regimes: kept, not
    trained again), with the date it was made."""
    raw = common.RESULTS / "learning_runs.json"
    if not raw.exists():
        return None
    saved = json.loads(raw.read_text())
    easy = saved.get("easy")
    if easy is not None:
        easy = dict(easy, stored_from=saved.get("easy_date") or saved.get("date") or "the stored run of 2026-11-26")
    return easy


def run(ctx, tasks=None):
    """The run of `FULL` (or `QUICK`), optionally on fewer `tasks` (`python -m reproduce.learning --run
    TASK ...`: the report says which were cut)."""
    spec = dict(QUICK if ctx.quick else FULL)
    for key in ("tasks", "variants", "regimes"):
        spec[key] = list(spec[key])
    if tasks:
        unknown = [t for t in tasks if t not in TASK_NAMES]
        if unknown:
            raise SystemExit(f"Unknown task(s) {', '.join(unknown)}; the tasks are {', '.join(TASK_NAMES)}.")
        spec["tasks"] = list(tasks)
    spec["rollouts"] = str(common.RESULTS / "learning_rollouts.npz")
    common.RESULTS.mkdir(exist_ok=True)
    total = sum(len(members_of(v, range(spec["seeds"]), spec["regimes"])) for v in spec["variants"]) * len(
        spec["tasks"]
    )
    start = time.perf_counter()
    if PRETRAINED in spec["regimes"]:
        path = vit_path(ctx.quick)
        spec["vit_record"], spec["pretrain_minutes"] = ensure_vit(spec["pretrain"], path, ctx.console)
        spec["vit"] = str(path)
    easy = _stored_easy()
    # An interrupted run of the same spec left its finished runs here: they are kept, the rest is trained.
    spec["partial"] = str(common.RESULTS / ("learning_partial_quick.jsonl" if ctx.quick else "learning_partial.jsonl"))
    earlier = partial_runs(spec["partial"], spec_key(spec))
    if earlier:
        ctx.console.print(f"continuing an interrupted run: {len(earlier)} runs kept from {spec['partial']}")
        spec["continued"] = len(earlier)
    earlier = [r for r in earlier if r["task"] in spec["tasks"] and r["variant"] in spec["variants"]]
    done = {(r["variant"], r["task"], r.get("regime"), r["seed"]) for r in earlier}
    left = [  # the variants with something left to train: the workers' shares are dealt from these
        v
        for v in spec["variants"]
        if any(
            (v, t, g, s) not in done
            for t in spec["tasks"]
            for g, s in members_of(v, range(spec["seeds"]), spec["regimes"])
        )
    ]
    runs = earlier + (run_workers(ctx, dict(spec, variants=left), total - len(earlier)) if left else [])
    minutes = (time.perf_counter() - start) / 60
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if easy is None:
        easy, easy_date = run_easy(1 if ctx.quick else 3), date
    else:
        easy_date = easy.pop("stored_from")
    saved = {"spec": spec, "minutes": minutes, "date": date, "runs": runs, "easy": easy, "easy_date": easy_date}
    if earlier:  # `minutes` is this session's time only
        saved["continued"] = {"runs_kept": len(earlier)}
    (common.RESULTS / "learning_runs.json").write_text(json.dumps(saved, indent=1))
    if os.path.exists(spec["partial"]):
        os.remove(spec["partial"])
    return report(ctx, spec, runs, minutes, easy, easy_date=easy_date)


def rerun_task(ctx, task):
    """Trains every variant of the stored run again on one task (its spec otherwise unchanged), replaces
    that task's runs in results/learning_runs.json (the replaced ones are kept under "superseded", with
    the reason) and rewrites the report. For a task whose data changed since the full run."""
    path = common.RESULTS / "learning_runs.json"
    saved = json.loads(path.read_text())
    spec = dict(saved["spec"], tasks=[task], rollouts=None, partial=None)
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
    return report(
        ctx,
        saved["spec"],
        saved["runs"],
        saved["minutes"],
        saved.get("easy"),
        saved.get("reruns"),
        easy_date=saved.get("easy_date"),
    )
