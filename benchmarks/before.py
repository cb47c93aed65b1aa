"""Training step of the old code and the current code, measured on this machine in one run.

The vanilla and C-VidTr training steps are meant to be no slower than before the performance work
(67e19ff). The stored benchmark compares with figures measured elsewhere; this script measures both
versions here, interleaved, so that they see the same machine and nearly the same load:

- the old code is a temporary `git worktree` of REF (default 67e19ff, the last commit before the
  performance work landed in 9051b3b), removed at the end, also on error; so it needs a git clone
  with that history, and says so clearly in an unpacked copy;
- the current code is this checkout's working tree (HEAD plus any uncommitted changes);
- each figure is one fresh process, `benchmarks/_step_timer.py` with `PYTHONPATH=<tree>`, run through
  `vidtr_keras.complexity.runner`: the same plain `build_model` + `compile(SGD momentum)` +
  `train_on_batch` in both trees (no tuning helpers, which the old code does not have), one warm-up
  step then `runs` timed ones, with the backend's matmul peak measured in the same process;
- order: for each backend, for each preset, old then new (then the pair again with --repeat), one
  process at a time.

Writes results/benchmark_before.{md,csv}.

    python -m benchmarks before [--quick]
    python -m benchmarks before --ref 67e19ff --presets vanilla_s,cvidtr_s,vidtr_s \
        --backends tensorflow,jax,torch [--runs 3] [--repeat]
"""

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import warnings

# The FLOP count below needs no backend (as in `python -m benchmarks`); the timed processes set theirs.
os.environ.setdefault("KERAS_BACKEND", "numpy")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# XLA_FLAGS as the user set it, before anything here imports vidtr_keras (which may add a JAX flag):
# both versions' processes start from it and make their own additions.
_USER_XLA_FLAGS = os.environ.get("XLA_FLAGS")

from reproduce import common  # noqa: E402

NAME = "benchmark_before"
DEFAULT_REF = "67e19ff"
PRESETS = ("vanilla_s", "cvidtr_s", "vidtr_s")
QUICK_PRESETS = ("cvidtr_s",)
TOLERANCE = 0.10  # "no slower": now median <= (1 + TOLERANCE) x before median
TIMEOUT_S = 900
TIMER = pathlib.Path(__file__).resolve().parent / "_step_timer.py"


def _git(*args):
    proc = subprocess.run(["git", "-C", str(common.ROOT), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`git {' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


class NotAGitClone(RuntimeError):
    """The old code cannot be read: git is missing, or this is not a git clone."""


def resolve_ref(ref):
    """(full sha, short sha, subject) of `ref`; a clear error outside a git checkout or for a missing ref."""
    if shutil.which("git") is None:
        raise NotAGitClone(
            "git is not installed: `python -m benchmarks before` reads the old code from the repository's history."
        )
    inside = subprocess.run(
        ["git", "-C", str(common.ROOT), "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True
    )
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise NotAGitClone(
            f"{common.ROOT} is not a git checkout: `python -m benchmarks before` reads the old code (--ref) from the "
            "repository's history, so it needs a clone, not an unpacked copy."
        )
    found = subprocess.run(
        ["git", "-C", str(common.ROOT), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        raise ValueError(
            f"--ref {ref!r} is not a commit of {common.ROOT} (a shallow clone may lack it: `git fetch --unshallow`)."
        )
    sha = found.stdout.strip()
    return sha, _git("rev-parse", "--short", sha), _git("log", "-1", "--format=%s", sha)


def current_version():
    """(short HEAD sha, its subject, whether vidtr_keras/ has uncommitted changes): what "now" measures."""
    head = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--", "vidtr_keras"))
    return head, _git("log", "-1", "--format=%s", "HEAD"), dirty


@contextlib.contextmanager
def worktree(sha):
    """A temporary detached checkout of `sha`, removed on exit (also on error or interrupt)."""
    tmp = tempfile.mkdtemp(prefix="vidtr-before-")
    path = os.path.join(tmp, "tree")
    try:
        _git("worktree", "add", "--detach", path, sha)
        yield path
    finally:
        removed = subprocess.run(
            ["git", "-C", str(common.ROOT), "worktree", "remove", "--force", path], capture_output=True, text=True
        )
        shutil.rmtree(tmp, ignore_errors=True)
        if removed.returncode != 0:  # e.g. `worktree add` failed half-way: drop its record (its folder is gone)
            subprocess.run(["git", "-C", str(common.ROOT), "worktree", "prune"], capture_output=True)


def measure(ctx, bar, label, tree, backend, args, timeout=TIMEOUT_S):
    """Runs `_step_timer.py` on `tree` in a fresh process; its RESULT dict, or {"error": ...} (also when
    the process imported another tree's vidtr_keras)."""
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import ChildTimeout, exit_text, run_child

    env = child_env(backend)
    env["PYTHONPATH"] = str(tree)
    if _USER_XLA_FLAGS is None:
        env.pop("XLA_FLAGS", None)
    else:
        env["XLA_FLAGS"] = _USER_XLA_FLAGS
    cmd = [sys.executable, str(TIMER), json.dumps(args)]
    try:
        run = run_child(
            cmd,
            env=env,
            cwd=tree,
            timeout=timeout,
            on_progress=lambda text: ctx.progress.update(bar, description=f"{NAME}: {label}: {text}"),
            name=f"the step timer ({label})",
            check=False,
        )
        result = run.result or {}
        if run.returncode != 0 or "median_s" not in result:
            result = {"error": f"{exit_text(run.returncode)}: {run.last_line or 'no output'}"}
    except ChildTimeout:
        result = {"error": f"ran past {timeout} s (killed)"}
    expected = os.path.realpath(os.path.join(tree, "vidtr_keras"))
    if "vidtr_keras" in result and os.path.realpath(result["vidtr_keras"]) != expected:
        # e.g. an installed vidtr_keras that shadows the tree: the figure would time the wrong code
        result = {"error": f"imported {result['vidtr_keras']}, not {expected}"}
    if "error" in result:
        ctx.log(f"[red]{label}: {result['error']}[/red]")
    ctx.advance(bar, f"{NAME}: {label} done")
    return result


def _spread(r):
    return r["max_s"] / r["min_s"] - 1.0


def _verdicts(measured, presets, backends, gflop):
    """One markdown line per (backend, preset): pooled timed steps of each version, now vs before."""
    lines = []
    for backend in backends:
        for preset in presets:
            by_version = {}
            for m in measured:
                if m["backend"] == backend and m["preset"] == preset and "median_s" in m["result"]:
                    by_version.setdefault(m["version"], []).append(m["result"])
            if "before" not in by_version or "now" not in by_version:
                lines.append(f"- {preset} on {backend}: **not compared** (a figure failed; see the table)")
                continue
            before = statistics.median([t for r in by_version["before"] for t in r["runs_s"]])
            now = statistics.median([t for r in by_version["now"] for t in r["runs_s"]])
            ratio = now / before
            pct = {
                v: statistics.median([100.0 * gflop[preset] / r["median_s"] / r["peak_gflops"] for r in rs])
                for v, rs in by_version.items()
            }
            verdict = "no slower" if ratio <= 1.0 + TOLERANCE else f"slower by {(ratio - 1) * 100:.0f}%"
            lines.append(
                f"- {preset} on {backend}: **{verdict}** (median step {before:.3g} s before, {now:.3g} s now, "
                f"now/before {ratio:.2f}; {pct['before']:.0f}% -> {pct['now']:.0f}% of the matmul peak measured "
                "in the same process)"
            )
            params = {v: {r["params"] for r in rs} for v, rs in by_version.items()}
            if params["before"] != params["now"]:
                lines.append(
                    f"  - the two versions build different models: {sorted(params['before'])} parameters before, "
                    f"{sorted(params['now'])} now"
                )
    return lines


def run(
    ctx,
    ref=DEFAULT_REF,
    presets=None,
    backends=None,
    runs=None,
    repeat=False,
    frames=8,
    image_size=224,
    name=NAME,
):
    """Measures REF and the current tree, interleaved; writes results/NAME.{md,csv} (NAME
    "benchmark_before" unless another is given, e.g. for a re-check of a few models)."""
    with warnings.catch_warnings():  # the numpy backend's note on custom_gradient: this process only counts
        warnings.simplefilter("ignore", UserWarning)
        from vidtr_keras.complexity.flops import flops
        from vidtr_keras.models import preset_names

    presets = list(presets or (QUICK_PRESETS if ctx.quick else PRESETS))
    runs = int(runs or (2 if ctx.quick else 3))
    if backends is None:
        backends = common.installed_backends()
    backends = list(backends)
    unknown = [p for p in presets if p not in preset_names()]
    if unknown:
        raise ValueError(f"unknown preset(s) {unknown}; presets: {', '.join(preset_names())}")
    bad = [b for b in backends if b not in common.BACKENDS]
    if bad:
        raise ValueError(f"unknown backend(s) {bad}; backends: {', '.join(common.BACKENDS)}")
    missing = [b for b in backends if not common.installed(b)]
    if missing:
        raise ValueError(f"backend(s) {missing} not installed in {sys.executable}")
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if not TIMER.exists():
        raise FileNotFoundError(f"{TIMER} is missing")
    sha, short, subject = resolve_ref(ref)
    head, head_subject, dirty = current_version()
    now_label = f"now {head}" + (" + uncommitted" if dirty else "")
    gflop = {p: flops(p, frames=frames, image_size=image_size, convention="full").flops * 3 / 1e9 for p in presets}
    args = {"frames": frames, "image_size": image_size, "runs": runs}
    passes = 2 if repeat else 1
    measured = []
    with worktree(sha) as old_tree:
        trees = {"before": (old_tree, f"before {short}"), "now": (str(common.ROOT), now_label)}
        bar = ctx.task(NAME, len(backends) * len(presets) * 2 * passes)
        for backend in backends:
            for preset in presets:
                for n in range(passes):
                    for version in ("before", "now"):
                        tree, text = trees[version]
                        label = f"{backend} {preset} {text}" + (f" (pass {n + 1})" if passes > 1 else "")
                        result = measure(ctx, bar, label, tree, backend, dict(args, preset=preset))
                        measured.append(
                            dict(backend=backend, preset=preset, version=version, label=text, npass=n, result=result)
                        )
    before, now = (sha, short, subject), (head, head_subject, dirty)
    return write_report(measured, presets, backends, gflop, runs, passes, frames, image_size, before, now, name)


def write_report(measured, presets, backends, gflop, runs, passes, frames, image_size, before, now, name=NAME):
    """The markdown and CSV of `run`'s figures; `before` = (sha, short sha, subject), `now` = (short HEAD,
    subject, has uncommitted changes)."""
    sha, short, subject = before
    columns = [
        "backend",
        "preset",
        "version",
        "median s",
        "min s",
        "max s",
        "GFLOP/s",
        "matmul peak GFLOP/s",
        "% of peak",
        "now/before time",
        "load avg (1 min)",
    ]
    failed = any("error" in m["result"] for m in measured)
    if failed:
        columns.append("error")
    rows = []
    before_median = {}
    for m in measured:
        r = m["result"]
        version = m["label"] + (f" (pass {m['npass'] + 1})" if passes > 1 else "")
        if "median_s" not in r:
            row = [m["backend"], m["preset"], version] + [None] * 8
            if failed:
                row.append(r["error"])
            rows.append(row)
            continue
        key = (m["backend"], m["preset"], m["npass"])
        ratio = None
        if m["version"] == "before":
            before_median[key] = r["median_s"]
        elif key in before_median:
            ratio = r["median_s"] / before_median[key]
        achieved = gflop[m["preset"]] / r["median_s"]
        row = [
            m["backend"],
            m["preset"],
            version,
            r["median_s"],
            r["min_s"],
            r["max_s"],
            achieved,
            r["peak_gflops"],
            100.0 * achieved / r["peak_gflops"],
            ratio,
            r["loadavg_end"][0],
        ]
        if failed:
            row.append(None)
        rows.append(row)
    ok = [m["result"] for m in measured if "median_s" in m["result"]]
    spreads = [_spread(r) for r in ok]
    peaks = [r["peak_gflops"] for r in ok]
    noise = "no figure to measure it on"
    if spreads:
        noise = (
            f"in this run the timed steps of one process spread by {statistics.median(spreads) * 100:.0f}% "
            f"(median, max/min) and up to {max(spreads) * 100:.0f}%"
        )
        if len(peaks) > 1:
            noise += f", and the matmul peak ranged {min(peaks):.0f}-{max(peaks):.0f} GFLOP/s between processes"
    sizes = f"{frames} x {image_size} x {image_size}"
    uncommitted = ", with uncommitted changes to vidtr_keras/" if now[2] else ""
    compared = [
        f"- **before**: `{short}` ({subject}), checked out in a temporary git worktree (removed after the run)"
        + (": the last commit before the performance work landed (9051b3b)." if sha.startswith(DEFAULT_REF) else "."),
        f"- **now**: this checkout's working tree at HEAD `{now[0]}` ({now[1]}){uncommitted}.",
        "- Each row is one fresh process (`benchmarks/_step_timer.py` with `PYTHONPATH` set to the tree; the "
        "process reports the `vidtr_keras` it imported, checked to be that tree's): "
        f"`build_model(preset, num_frames={frames}, image_size={image_size})`, "
        "`compile(SGD(1e-3, momentum=0.9), SparseCategoricalCrossentropy(from_logits=True))`, one warm-up "
        f"`train_on_batch` on a random batch-1 clip ({sizes}, label 0), then {runs} timed ones. Both "
        "versions are timed as a user's plain `train_on_batch` / `fit` runs them: no vidtr_keras tuning "
        "helper is applied (the old code has none), only what the library does by itself. On JAX on the CPU "
        "that includes, now, the residual-gradient fence each encoder block applies in training (and the "
        "XLA flag `import vidtr_keras` sets for remat, which changes nothing without remat).",
        "- Order: for each backend, for each preset, before then now"
        + (", then the pair again" if passes > 1 else "")
        + f"; one process at a time (timeout {TIMEOUT_S} s each).",
        f"- GFLOP/s: the current code's analytic full count (`flops(preset, frames={frames}, image_size="
        f'{image_size}, convention="full").flops` x 3 for forward + backward) for both versions, which build '
        "the same model (the verdicts say where the parameter counts differ); the matmul peak is the "
        "backend's best float32 2048^3 `keras.ops.matmul` (jax.jit / tf.function / eager torch) in the same "
        "process, before and after the timed steps.",
        f'- "No slower" means the median step now is at most {1 + TOLERANCE:.2f} x the median before '
        f"(all timed steps of a version pooled). The {TOLERANCE * 100:.0f}% tolerance is the noise of "
        "wall-clock timings on these 2 shared cores (about ±15% between runs of the same code): "
        f"{noise}. A difference within it cannot be told from noise; the % of peak beside each figure "
        "shows the machine's state when the process ran.",
    ]
    notes = [
        "## Verdict per model",
        "\n".join(_verdicts(measured, presets, backends, gflop)),
        "## What is compared",
        "\n".join(compared),
    ]
    return common.write(
        name,
        f"Training step before ({short}) and now, measured in one run on this machine",
        columns,
        rows,
        notes=notes,
        backends=backends,
        command="python -m benchmarks before" + ("" if name == NAME else f" --name {name}"),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks before",
        description="Training step of an older commit and of the current code, interleaved on this machine "
        "(results/benchmark_before.md).",
    )
    parser.add_argument("--ref", default=DEFAULT_REF, help=f"the old code's commit (default {DEFAULT_REF})")
    parser.add_argument("--presets", help=f"comma-separated (default {','.join(PRESETS)})")
    parser.add_argument("--backends", help="comma-separated (default: every installed one)")
    parser.add_argument("--runs", type=int, help="timed steps per process (default 3, 2 with --quick)")
    parser.add_argument("--repeat", action="store_true", help="measure each before/now pair twice")
    parser.add_argument("--quick", action="store_true", help=f"{','.join(QUICK_PRESETS)} only, 2 timed steps")
    parser.add_argument("--name", default=NAME, help=f"results/NAME.{{md,csv}} to write (default {NAME})")
    # For testing the script on tiny models; the GFLOP count follows them.
    parser.add_argument("--frames", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--image-size", type=int, default=224, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    with common.session(quick=args.quick) as ctx:
        try:
            path = run(
                ctx,
                ref=args.ref,
                presets=args.presets.split(",") if args.presets else None,
                backends=args.backends.split(",") if args.backends else None,
                runs=args.runs,
                repeat=args.repeat,
                frames=args.frames,
                image_size=args.image_size,
                name=args.name,
            )
        except (NotAGitClone, ValueError) as err:  # before anything was measured: a usage error, not a crash
            ctx.console.print(f"[red]error:[/red] {err}")
            return 2
        ctx.console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
