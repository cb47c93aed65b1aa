"""`python -m benchmarks NAME [--quick] [options]`: run one development investigation into results/.

These are not the paper's tables (those are `python -m reproduce all`): they explain or check the
implementation's speed. Each measures in fresh child processes, one at a time, with a progress bar;
`python -m benchmarks NAME --help` lists a benchmark's own options.
"""

import argparse
import importlib
import os
import sys
import warnings

# The parent process only plans, reports and counts FLOPs analytically; measurements run in child
# processes that set KERAS_BACKEND themselves. Keras's numpy backend keeps this process light.
os.environ.setdefault("KERAS_BACKEND", "numpy")
# ... whose custom_gradient (the residual-gradient fence) warns that it does nothing: nothing here trains.
warnings.filterwarnings("ignore", message="`custom_gradient` for the numpy backend")

BENCHMARKS = {
    "before": "training step of an older commit and of the current code, interleaved (needs a git clone)",
    "fused_attention": "PyTorch inference with fused against plain joint attention, per model",
    "inference_profile": "where VidTr-S inference time goes per backend: model-shaped matmuls vs the rest",
    "jax_profile": "where the JAX training step's time goes on the CPU, per category of XLA thunk",
    "official": "PyTorch against the official code (a gluonmm checkout, --gluonmm) on the same torch",
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run one development investigation (not a paper table) into results/.",
        epilog="benchmarks:\n" + "\n".join(f"  {name:18} {text}" for name, text in BENCHMARKS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=list(BENCHMARKS), help="the benchmark to run")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="--quick, or the benchmark's own options")
    args = parser.parse_args(argv)
    module = importlib.import_module(f"benchmarks.{args.name}")
    return module.main(args.options)


if __name__ == "__main__":
    sys.exit(main())
