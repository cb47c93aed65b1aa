import json
import os
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402

# JAX compiles every eager primitive anew for each new shape (~1 s per random-shape example here), so
# it draws fewer examples to keep each backend's suite within a few minutes; the same properties run.
_EXAMPLES = 5 if keras.backend.backend() == "jax" else 12
settings.register_profile(
    "ci", max_examples=_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
GLUONMM = FIXTURES / "gluonmm"
FIXTURE_NAMES = ("vidtr_split_t8", "cvidtr_t8", "vanilla_t4")
BACKEND = keras.backend.backend()


def load_fixture(name):
    with np.load(GLUONMM / f"{name}.npz") as data:
        config = json.loads(str(data["config_json"]))
        state_dict = {k[3:]: data[k] for k in data.files if k.startswith("sd/")}
        return config, state_dict, data["input"], data["logits"]


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
