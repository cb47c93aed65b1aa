"""`python -m reproduce NAME|all [--quick]`: regenerate results/NAME.md and results/NAME.csv.

`all` regenerates the paper's tables: Table 1 (configurations), Table 2 (parameters, GFLOPs, latency),
Table 3 (C-VidTr views x GFLOPs), Tables 4a/4b/4c/4e/4f (the ablations' GFLOPs and training memory),
and `scaling`, which reproduces the paper's memory argument (its complexity analysis of separable
attention: joint attention's memory grows with (T S)^2, separable attention's with T S (T + S); the
introduction's "a vanilla model needs about 16 GB to train on one 16-frame clip"): memory and FLOPs
against frames and resolution, analytic and measured. What the tables report as accuracy (Table 4d
entirely, Tables 5-6, the top-1 columns) needs Kinetics and other datasets and GPU-weeks of training;
`learning` checks the paper's qualitative accuracy claims at small scale instead.

Named runs outside `all`, each a study of its own: `crosscheck` (our analytic FLOP count against each
backend's own counter: a check of the accounting, not a paper table), `learning` (does it learn? every
variant x task x seed on the procedural benchmark), `benchmark` (speed against each backend's matmul
peak, training memory, remat, bfloat16), `walkthrough` (the README walk-through's commands on every
backend, its measured curve) and `data` (the data path in clips/s, no backend). Development
investigations that are not about the paper (before/after a commit, fused attention, an inference profile)
are `python -m benchmarks NAME`.

Measurements on each backend run in fresh child processes (KERAS_BACKEND set per process), one at a
time. Before it starts, the run says how long it will take: an estimate from the durations measured on
this project's machine (DURATIONS), not a promise for another one.
"""

import argparse
import importlib
import os
import sys
import time
import warnings

# The analytic models need no backend; measurements run in child processes that set KERAS_BACKEND
# themselves. Keras's numpy backend keeps this process from loading TensorFlow for nothing.
os.environ.setdefault("KERAS_BACKEND", "numpy")
# ... whose custom_gradient (the residual-gradient fence) warns that it does nothing: nothing here trains.
warnings.filterwarnings("ignore", message="`custom_gradient` for the numpy backend")

PAPER_TABLES = {
    "table1": "configurations of the paper's models, read from the presets",
    "table2": "parameters, GFLOPs (both conventions) and CPU latency of Vanilla-Tr, VidTr-S/M/L, C-VidTr-S/M/L",
    "table3": "C-VidTr: views x GFLOPs",
    "table4a": "patching ablation: GFLOPs",
    "table4b": "training memory of spatial-only, joint and separable attention, measured per backend",
    "table4c": "ViT-B vs ViT-L width: GFLOPs",
    "table4e": "pooling at layers [k, k+2]: GFLOPs",
    "table4f": "pooling at layer 1 and a later layer: GFLOPs",
    "scaling": "the paper's memory argument: memory and FLOPs against frames and resolution, measured and analytic",
}
NAMED_RUNS = {
    "crosscheck": "the analytic full FLOP count against XLA, torch and the TF graph (a check of our accounting)",
    "learning": "does it learn? every variant x task x seed on the procedural benchmark, with intervals",
    "benchmark": "speed (% of each backend's matmul peak) and training memory per backend, remat, bf16",
    "walkthrough": "the README walk-through (pretrained tiny ViT inflated, fine-tuned; from scratch) per backend",
    "data": "the data path in clips/s: our reader against the one before, plain OpenCV (and decord); loader threads",
}
SCRIPTS = {**PAPER_TABLES, **NAMED_RUNS}
# Wall time of each script in seconds, (full, --quick), on this project's machine (2 AMD EPYC cores, 23.5
# GiB RAM, the three backends installed): the estimate printed before a run. How each was obtained:
# - table1 and the analytic tables: measured (seconds; table1 includes importing the package).
# - table2, table4b, scaling (full): measured one after another on 2026-12-02 while other jobs shared
#   the two cores (load average 3-11), so an idle machine is faster; scaling was stopped after 22 min
#   in its last step. Their --quick figures scale the full ones by the work quick mode skips (table2:
#   2 calls per model instead of 6; table4b has no quick mode; scaling: 3 XLA compiles instead of 15).
# - learning and benchmark (full): the stored runs' own durations (results/learning.md, the benchmark's
#   full run); walkthrough: its whole run of 2026-12-02 (26 min at a load average of about 10);
#   crosscheck and the --quick figures of the named runs: estimates, not measured.
# A run prints its own timings at the end.
DURATIONS = {
    "table1": (5, 5),
    "table2": (1010, 400),
    "table3": (1, 1),
    "table4a": (1, 1),
    "table4b": (1680, 1680),
    "table4c": (1, 1),
    "table4e": (1, 1),
    "table4f": (1, 1),
    "scaling": (1500, 500),
    "crosscheck": (600, 600),
    "learning": (4600, 300),
    "benchmark": (2640, 600),
    "walkthrough": (1560, 1560),
    "data": (140, 60),  # both measured on 2026-12-02 at a load average of about 10
}


def estimate(names, quick=False):
    """Estimated seconds of each script of `names` (from DURATIONS) and their sum."""
    each = {name: DURATIONS[name][1 if quick else 0] for name in names}
    return each, sum(each.values())


def _minutes(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m reproduce",
        description="Regenerate the paper's tables (all) or one named run into results/.",
        epilog="all = the paper's tables:\n"
        + "\n".join(f"  {name:11} {text}" for name, text in PAPER_TABLES.items())
        + "\nnamed runs, not in all:\n"
        + "\n".join(f"  {name:11} {text}" for name, text in NAMED_RUNS.items())
        + "\ndevelopment benchmarks: python -m benchmarks --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=list(SCRIPTS) + ["all"], help="a script name, or all (the paper's tables)")
    parser.add_argument("--quick", action="store_true", help="fewer timed runs and measured points")
    args = parser.parse_args(argv)

    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    from reproduce.common import Context

    class Count(ProgressColumn):
        """Scripts done of all for the overall bar (whose total is estimated seconds), steps for the others."""

        def render(self, task):
            if "count" in task.fields:
                return Text(f"{task.fields['done']}/{task.fields['count']}")
            return Text(f"{task.completed:.0f}/{task.total:.0f}" if task.total is not None else "")

    class Left(ProgressColumn):
        """The estimate of what is left of the overall run (the other bars show nothing here)."""

        def render(self, task):
            if "count" not in task.fields:
                return Text("")
            return Text(f"about {_minutes(max(0.0, task.total - task.completed))} left")

    names = list(PAPER_TABLES) if args.name == "all" else [args.name]
    each, total = estimate(names, args.quick)
    columns = (TextColumn("{task.description}"), BarColumn(), Count(), TimeElapsedColumn(), Left())
    with Progress(*columns) as progress:
        console = progress.console
        plan = ", ".join(f"{n} ~{_minutes(s)}" for n, s in each.items())
        console.print(
            f"reproduce {args.name}{' --quick' if args.quick else ''}: about {_minutes(total)} "
            f"(durations measured on this project's 2-core machine with other jobs on it, see DURATIONS in "
            f"reproduce/__main__.py; an idle machine is faster: {plan})"
        )
        ctx = Context(progress, console, quick=args.quick)
        # The bar advances by each script's estimated share, so it fills in proportion to the time.
        overall = progress.add_task(f"reproduce {args.name}", total=total, done=0, count=len(names))
        start, timings = time.perf_counter(), []
        for i, name in enumerate(names):
            progress.update(overall, description=f"reproduce {args.name}: {name}")
            t0 = time.perf_counter()
            path = importlib.import_module(f"reproduce.{name}").run(ctx)
            timings.append((name, time.perf_counter() - t0))
            console.log(f"{name}: wrote {path} in {_minutes(timings[-1][1])}")
            progress.update(overall, advance=each[name], done=i + 1)
    spent = time.perf_counter() - start
    console.print(f"done in {_minutes(spent)}: " + ", ".join(f"{n} {s:.0f} s" for n, s in timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
