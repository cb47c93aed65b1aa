"""Helpers shared by the specs: the official fixtures, array conversion, compiled layer calls.

Test modules import these from here (`from helpers import to_numpy`), never from `conftest`:
`conftest.py` holds only what pytest itself looks for (hooks, fixtures, hypothesis profiles) and the
environment that has to be set before keras is imported. `spec_tests/` is on pytest's `pythonpath`
(pyproject.toml), so this module imports the same way from test modules in subfolders.
"""

import json
import pathlib

import keras
import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent  # the repository root, wherever a spec module lives
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
GLUONMM = FIXTURES / "gluonmm"
FIXTURE_NAMES = ("vidtr_split_t8", "cvidtr_t8", "vanilla_t4")
BACKEND = keras.backend.backend()


def load_fixture(name):
    """`(config, state_dict, input, logits)` of one official gluonmm fixture (`fixtures/gluonmm/<name>.npz`)."""
    with np.load(GLUONMM / f"{name}.npz") as data:
        config = json.loads(str(data["config_json"]))
        state_dict = {k[3:]: data[k] for k in data.files if k.startswith("sd/")}
        return config, state_dict, data["input"], data["logits"]


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def run_compiled(fn, *args):
    """`fn(*args)` (layers called on arrays), as one compiled function on JAX, eagerly elsewhere.

    Eager JAX compiles every primitive anew for each new shape (a layer call is 10-30 compilations, a
    few seconds on this machine), so a property drawing random shapes spends its time compiling; one
    `jax.jit` per drawn shape compiles the same computation once. This is the path Keras itself takes
    on JAX (`fit`, `predict`, `evaluate` are jitted); TensorFlow and PyTorch run eagerly, which compiles
    nothing. `fn` must not create or assign variables (build layers before).
    """
    if BACKEND != "jax":
        return fn(*args)
    import jax

    return jax.jit(fn)(*args)


def vidtr(*argv):
    """Runs `vidtr ARGV` through `vidtr_keras.cli.main` (errors -> exit code 2 and a message)."""
    from vidtr_keras import cli

    return cli.main([str(a) for a in argv])
