"""`python -m reproduce NAME|all [--quick]`: regenerate results/NAME.md and results/NAME.csv.

NAME is one of the scripts below; `all` runs them in order. Measurements on each backend run in fresh
subprocesses (KERAS_BACKEND set per process), one at a time.
"""

import argparse
import importlib
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The analytic models need no backend; measurements run in subprocesses that set KERAS_BACKEND
# themselves. Keras's numpy backend keeps this process from loading TensorFlow for nothing.
os.environ.setdefault("KERAS_BACKEND", "numpy")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

SCRIPTS = {
    "table1": "configurations of the paper's models, read from the presets",
    "table2": "parameters, GFLOPs (both conventions) and CPU latency of Vanilla-Tr, VidTr-S/M/L, C-VidTr-S/M/L",
    "table3": "C-VidTr: views x GFLOPs",
    "table4a": "patching ablation: GFLOPs",
    "table4b": "training memory of spatial-only, joint and separable attention, measured per backend",
    "table4c": "ViT-B vs ViT-L width: GFLOPs",
    "table4e": "pooling at layers [k, k+2]: GFLOPs",
    "table4f": "pooling at layer 1 and a later layer: GFLOPs",
    "scaling": "memory and FLOPs against frames and resolution, measured and analytic, plotted",
    "crosscheck": "the analytic full FLOP count against XLA, torch and the TF graph",
    "benchmark": "speed (% of each backend's matmul peak) and training memory per backend, remat, bf16",
    "benchmark_before": "training step of the pre-issue-10 code (67e19ff) and the current code, interleaved here",
    "fused_attention": "PyTorch inference with fused against plain joint attention, per model, in one process",
    "inference_profile": "where VidTr-S inference time goes per backend: model-shaped matmuls vs the rest",
    "learning": "does it learn? every variant x task x seed on the procedural benchmark, with intervals",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=list(SCRIPTS) + ["all"], help="a script name or all")
    parser.add_argument("--quick", action="store_true", help="fewer timed runs and measured points")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from reproduce._common import Context

    names = list(SCRIPTS) if args.name == "all" else [args.name]
    console = Console()
    start = time.perf_counter()
    timings = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        ctx = Context(progress, console, quick=args.quick)
        overall = progress.add_task(f"reproduce {args.name}", total=len(names))
        for name in names:
            progress.update(overall, description=f"reproduce {args.name}: {name}")
            t0 = time.perf_counter()
            module = importlib.import_module(f"reproduce.{name}")
            path = module.run(ctx)
            timings.append((name, time.perf_counter() - t0))
            console.log(f"{name}: wrote {path} in {timings[-1][1]:.0f} s")
            progress.advance(overall)
    total = time.perf_counter() - start
    console.print(f"done in {total / 60:.1f} min: " + ", ".join(f"{n} {s:.0f}s" for n, s in timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
