"""pytest's own hooks for the specs: the environment set before keras is imported, hypothesis profiles,
xdist's worker count and the per-test seed. Helpers the tests import live in `helpers.py`."""

import os

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# XLA (JAX everywhere, TensorFlow's jit-compiled `fit`/`predict`) compiles each new shape; with the tiny
# shapes here, compiling is most of the suite's time and LLVM's optimisation passes most of each compile.
# Level 0 changes the generated machine code's speed, not the computation XLA was asked to run (its HLO
# optimisations still run): compile-bound tests run markedly faster, while code that runs
# on large tensors runs slower (so tests keep tensors tiny; full-size models are built without drawing
# initial values). Set XLA_FLAGS to override.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import keras  # noqa: E402

# JAX compiles every eager primitive anew for each new shape (most of a random-shape example's time), so
# it draws fewer examples to keep each backend's suite within a few minutes; the same properties run.
_EXAMPLES = 5 if keras.backend.backend() == "jax" else 12
settings.register_profile(
    "ci", max_examples=_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_xdist_auto_num_workers(config):
    """Workers for `pytest -n auto` (what tox runs): one per core this process may use, at most 4.

    Most of the suite's time is XLA compiling tiny shapes, which runs on one core, so a second worker
    nearly halves the JAX suite on 2 cores; each worker imports its backend and builds models
    (1-3 GB resident at its peak), hence the cap on machines with many cores. `-n 0` runs serially.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo dataset of `vidtr make-demo-data`: 4 classes x 3 videos (2 train + 1 val each), 20-32 frames
    of 32x40 px, lossless .avi. A module may define its own `demo`."""
    from helpers import vidtr

    root = tmp_path_factory.mktemp("demo")
    assert vidtr("make-demo-data", root, "--videos-per-class", 3, "--val-per-class", 1, "--frames", 20, 32) == 0
    return root
