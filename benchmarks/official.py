"""PyTorch against the official code (amazon-science/gluonmm) on the same torch, measured in one run.

The official VidTr code is not part of this project: point `--gluonmm` (or the `GLUONMM` environment
variable) at a checkout of https://github.com/amazon-science/gluonmm. Only its VidTr files are loaded
(`src/transformers/models/vidtr/`, which need nothing beyond torch and numpy); the package
`__init__` files, which import timm for other models, are skipped by registering the packages bare.

Every figure is one fresh process (`--worker`): the model is built, one warm-up call, then `runs`
timed calls; the median wall time and the median CPU time of the process per call are reported,
with torch's thread count (the same for both: `--threads`, default torch's own) and the load
average. For each model and mode, `rounds` pairs of processes alternate ours and the official
code (the order flipped every round), so that both see the same machine; the ratio is taken
between the medians over the rounds. On a shared machine the CPU-time ratio is the steadier one:
a busy core stretches wall time but not the CPU time a call needs.

`--paired` measures each row in one process holding both models instead: one warm-up call of each, then
`runs` calls of each alternating (ours, official, then official, ours, ...), so that the two compared
calls are seconds apart in the same process, on the same threads; on a machine whose speed drifts
between processes (a shared virtual machine) this is the steadier comparison.

- inference: ours `predict_on_batch`; official `model.eval()` under `torch.no_grad()`.
- train: one SGD (momentum 0.9) step on sparse cross-entropy, dropout on in both (the presets'
  dropout is the official configs' 0.1); ours `train_on_batch`, official forward, backward, step.

Inputs: batch 1 clip of 8 x 224 x 224 x 3, float32, random weights (timing does not depend on them).
Models: C-VidTr-S (`CompactVidTr`, the cvidtr_s_8x8 config), VidTr-S (`VidTr`, vidtr_s_8x8) and
vanilla-S: the official code's vanilla model is its `VidTr` with `merge_later=True, merge_index=-1`
(one class token, joint space-time attention in every layer), the ViT-B sized model of the paper's
Table 2 row "Vanilla-Tr", at 8 frames.

Writes results/official.{md,csv}.

    python -m benchmarks official --gluonmm PATH [--paired] [--quick] [--presets vanilla_s,vidtr_s,cvidtr_s]
        [--threads N] [--rounds R] [--runs N]
"""

import argparse
import json
import os
import sys

from reproduce import common

PRESETS = ("vanilla_s", "vidtr_s", "cvidtr_s")
MODES = ("inference", "train")
TIMEOUT_S = 1800
FRAMES = 8
IMAGE_SIZE = 224
# The official configs (scripts/action_recognition/config/*_8x8_patch16_224_k400.yaml).
OFFICIAL_CONFIGS = {
    "cvidtr_s": dict(layer_pool=[1, 3, 5], number_of_keys=[2, 2, 2]),
    "vidtr_s": dict(merge_index=6, merge_later=False),
    # No config file: the official code's switch for joint attention from the first layer on.
    "vanilla_s": dict(merge_index=-1, merge_later=True),
}


def _official_model(gluonmm, preset):
    """The official model, loaded from the VidTr files of a gluonmm checkout."""
    import types

    root = os.path.abspath(gluonmm)
    vidtr_dir = os.path.join(root, "src", "transformers", "models", "vidtr")
    if not os.path.isfile(os.path.join(vidtr_dir, "vidtr_compact.py")):
        raise SystemExit(f"--gluonmm: no src/transformers/models/vidtr/vidtr_compact.py under {root}.")
    # Bare packages: their __init__ files import timm (for the image models), which VidTr does not use.
    packages = ("src", "src/transformers", "src/transformers/models", "src/transformers/models/vidtr")
    for package in packages + ("src/transformers/utils",):
        module = types.ModuleType(package.replace("/", "."))
        module.__path__ = [os.path.join(root, package)]
        sys.modules[module.__name__] = module
    common_args = dict(
        d_model=768,
        nhead=12,
        num_encoder_layers=12,
        dim_feedforward=3072,
        patch_size=(1, 16, 16),
        normalize_before=True,
        activity_num=400,
        dropout=0.1,
        temporal_size=FRAMES,
    )
    if preset == "cvidtr_s":
        from src.transformers.models.vidtr.vidtr_compact import CompactVidTr

        return CompactVidTr(**common_args, **OFFICIAL_CONFIGS[preset])
    from src.transformers.models.vidtr.vidtr_split import VidTr

    return VidTr(**common_args, **OFFICIAL_CONFIGS[preset])


def worker(which, preset, mode, runs, threads, gluonmm):
    """Runs in a fresh process: prints one RESULT line with one figure ("ours" or "official"), or with
    both ("paired": both models in this process, their calls alternating)."""
    import statistics
    import time

    import torch

    if threads:
        torch.set_num_threads(threads)
    if which == "paired":
        calls = {name: _call(name, preset, mode, gluonmm) for name in ("ours", "official")}
    else:
        calls = {which: _call(which, preset, mode, gluonmm)}
    for call in calls.values():
        call()  # warm-up
    wall = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    for i in range(runs):
        print(f"PROGRESS run {i + 1}/{runs}", flush=True)
        order = list(calls) if i % 2 == 0 else list(calls)[::-1]
        for name in order:
            w, c = time.perf_counter(), time.process_time()
            calls[name]()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    figures = {
        name: {
            "seconds": statistics.median(wall[name]),
            "cpu_seconds": statistics.median(cpu[name]),
            "runs_s": wall[name],
            "cpu_runs_s": cpu[name],
        }
        for name in calls
    }
    result = dict(figures[which]) if which != "paired" else {"figures": figures}
    result.update(
        which=which,
        preset=preset,
        mode=mode,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        loadavg=os.getloadavg()[0],
    )
    print("RESULT " + json.dumps(result), flush=True)


def _call(which, preset, mode, gluonmm):
    """One call of a model on the benchmark clip: ours ("ours") or the official code's ("official")."""
    import warnings

    import numpy as np
    import torch

    clip = np.random.default_rng(0).standard_normal((1, FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    if which == "ours":
        import keras

        from vidtr_keras.models import build_model

        model = build_model(preset, num_frames=FRAMES, image_size=IMAGE_SIZE)
        if mode == "train":
            model.compile(
                optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            labels = np.zeros((1,), "int32")

            def call():
                model.train_on_batch(clip, labels)

        else:

            def call():
                keras.ops.convert_to_numpy(model.predict_on_batch(clip))

    else:
        with warnings.catch_warnings():  # its xavier_uniform (deprecated name) warns at construction
            warnings.simplefilter("ignore", FutureWarning)
            model = _official_model(gluonmm, preset)
        x = torch.from_numpy(clip).permute(0, 4, 1, 2, 3).contiguous()  # (batch, channels, frames, h, w)
        if mode == "train":
            model.train()
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            labels = torch.zeros((1,), dtype=torch.long)

            def call():
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x), labels).backward()
                optimizer.step()

        else:
            model.eval()

            def call():
                with torch.no_grad():
                    model(x).numpy()

    return call


def _measure(ctx, bar, which, preset, mode, runs, threads, gluonmm):
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import ChildError, ChildTimeout, run_child

    cmd = [common.python_executable(), "-m", "benchmarks.official", "--worker", which, preset, mode]
    cmd += [str(runs), str(threads), gluonmm]
    label = f"{which} {preset} {mode}"
    try:
        run = run_child(
            cmd,
            env=child_env("torch"),
            cwd=common.ROOT,
            timeout=TIMEOUT_S,
            on_progress=lambda text: ctx.progress.update(bar, description=f"official: {label}: {text}"),
            name=f"the official-comparison worker ({label})",
        )
        result = run.result or {"error": f"no RESULT line; last output: {run.last_line or 'none'}"}
    except (ChildError, ChildTimeout) as err:
        result = {"error": str(err)}
    result.update(which=which, preset=preset, mode=mode)
    if "error" in result:
        ctx.log(f"[red]official {label}: {result['error']}[/red]")
    ctx.advance(bar, f"official: {label} done")
    return result


def _median(values):
    import statistics

    return statistics.median(values) if values else None


def _split_paired(result):
    """The two figures of a paired process, as two single-model results."""
    if "figures" not in result:  # an error
        return [dict(result, which=which) for which in ("ours", "official")]
    shared = {k: v for k, v in result.items() if k not in ("figures", "which")}
    return [dict(shared, which=which, **figure) for which, figure in result["figures"].items()]


def run(ctx, gluonmm, threads=0, rounds=None, runs=3, presets=PRESETS, modes=MODES, paired=False):
    if not common.installed("torch"):
        raise RuntimeError("the official comparison runs on PyTorch: install torch (the torch extra).")
    rounds = rounds or (1 if ctx.quick or paired else 3)
    pairs = [(preset, mode) for preset in presets for mode in modes]
    bar = ctx.task("official", (1 if paired else 2) * rounds * len(pairs))
    results = []
    for preset, mode in pairs:
        for r in range(rounds):
            if paired:
                results += _split_paired(_measure(ctx, bar, "paired", preset, mode, runs, threads, gluonmm))
                continue
            order = ("ours", "official") if r % 2 == 0 else ("official", "ours")
            for which in order:
                results.append(_measure(ctx, bar, which, preset, mode, runs, threads, gluonmm))
    rows = []
    for preset, mode in pairs:
        figures = {
            which: [x for x in results if x["which"] == which and x["preset"] == preset and x["mode"] == mode]
            for which in ("ours", "official")
        }
        ok = {which: [x for x in found if "seconds" in x] for which, found in figures.items()}
        if not ok["ours"] or not ok["official"]:
            errors = "; ".join(x["error"] for found in figures.values() for x in found if "error" in x)
            rows.append([preset, mode] + [None] * 8 + [errors or "no figure"])
            continue
        wall = {which: _median([x["seconds"] for x in found]) for which, found in ok.items()}
        cpu = {which: _median([x["cpu_seconds"] for x in found]) for which, found in ok.items()}
        loads = [x["loadavg"] for found in ok.values() for x in found]
        rows.append(
            [
                preset,
                mode,
                wall["official"],
                wall["ours"],
                wall["ours"] / wall["official"],
                cpu["official"],
                cpu["ours"],
                cpu["ours"] / cpu["official"],
                ok["ours"][0]["threads"],
                f"{min(loads):.1f}-{max(loads):.1f}",
                "",
            ]
        )
    columns = [
        "preset",
        "mode",
        "official s",
        "ours s",
        "ours / official (wall)",
        "official CPU s",
        "ours CPU s",
        "ours / official (CPU)",
        "torch threads",
        "load avg (1 min)",
        "error",
    ]
    torch_version = next((x["torch"] for x in results if "torch" in x), "?")
    design = (
        f"both models in one fresh process per row, one warm-up call each, then {runs} calls of each, alternating "
        "(ours then the official code, the order flipped every pair), so that both see the same process, threads "
        f"and moments of the machine; each column is the median of the {runs} calls ({rounds} process(es) per row: "
        "the median over them)"
        if paired
        else f"one fresh process per figure (one warm-up call, median of {runs} timed calls); {rounds} round(s) per "
        "row alternating ours and the official code (order flipped every round); each column is the median over "
        "the rounds"
    )
    notes = [
        f"PyTorch {torch_version} for both, batch 1 clip of {FRAMES}x{IMAGE_SIZE}x{IMAGE_SIZE}, float32, random "
        f"weights; {design}. CPU s: the process's CPU time per call (all threads), the steadier figure on a "
        "shared machine. The official code: amazon-science/gluonmm (its VidTr files, loaded from the checkout "
        "given with --gluonmm; nothing of it is in this project).",
        "vanilla_s: the official code's vanilla model, its VidTr with merge_later=True, merge_index=-1 (joint "
        "space-time attention in every layer through nn.MultiheadAttention); ours: the vanilla_s preset.",
    ]
    return common.write(
        "official",
        "PyTorch against the official code (amazon-science/gluonmm) on the same torch, in one run",
        columns,
        rows,
        notes=notes,
        backends=("torch",),
        command="python -m benchmarks official --gluonmm PATH" + (" --paired" if paired else ""),
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 7 and argv[0] == "--worker":  # the measuring child process
        worker(argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks official",
        description="PyTorch against the official VidTr code on the same torch (results/official.md).",
    )
    parser.add_argument(
        "--gluonmm",
        default=os.environ.get("GLUONMM"),
        help="a checkout of github.com/amazon-science/gluonmm (default: the GLUONMM environment variable)",
    )
    parser.add_argument("--quick", action="store_true", help="C-VidTr-S inference only, one round")
    parser.add_argument(
        "--paired",
        action="store_true",
        help="both models in one process per row, their calls alternating (the steadier comparison on a busy "
        "machine; --runs calls of each, default 7)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads in both (default: torch's own)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating pairs of processes per row (3)")
    parser.add_argument("--runs", type=int, default=None, help="timed calls per process, after one warm-up (3)")
    parser.add_argument(
        "--presets", default=",".join(PRESETS), help=f"comma-separated models (default {','.join(PRESETS)})"
    )
    args = parser.parse_args(argv)
    if not args.gluonmm:
        parser.error("--gluonmm: give the path of a gluonmm checkout (or set GLUONMM).")
    args.runs = args.runs or (7 if args.paired else 3)
    if args.threads < 0 or args.runs < 1 or (args.rounds is not None and args.rounds < 1):
        parser.error("--threads must be >= 0, --runs and --rounds >= 1.")
    presets = tuple(p.strip() for p in args.presets.split(",") if p.strip())
    unknown = sorted(set(presets) - set(PRESETS))
    if unknown or not presets:
        parser.error(f"--presets: choose among {', '.join(PRESETS)}, got {args.presets!r}.")
    kwargs = dict(presets=("cvidtr_s",), modes=("inference",)) if args.quick else dict(presets=presets)
    with common.session(quick=args.quick) as ctx:
        path = run(
            ctx, os.path.abspath(args.gluonmm), args.threads, args.rounds, args.runs, paired=args.paired, **kwargs
        )
        ctx.console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
