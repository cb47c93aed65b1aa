"""Mixed precision computes the same model as float32, within a stated tolerance.

Same weights (float32 variables, the mixed policy computes in 16 bits), same clip. The tolerance is
relative to the float32 logits' scale: bfloat16 keeps 8 significant bits (relative step 2^-8 = 0.4%),
float16 11 bits (0.05%); through a few layers the measured gap is about 1% (bfloat16) and 0.1%
(float16) of the largest logit, so the bounds below (5% and 1%) leave room for the backends' different
accumulation orders while a real error (a wrong cast, a softmax overflowing in float16) lands far outside.
"""

import keras
import numpy as np
import pytest

from vidtr_keras.convert import gluonmm
from vidtr_keras.models import VidTrBackbone, VidTrClassifier, build_model, get_preset

from helpers import run_compiled, to_numpy
from oracle_models import seeded_state_dict

TOLERANCE = {"mixed_bfloat16": 0.05, "mixed_float16": 0.01}


def _model(preset, dtype):
    backbone = VidTrBackbone(**get_preset(preset)["config"], dropout=0.0, attention_dropout=0.0, dtype=dtype)
    return VidTrClassifier(backbone, 5, dropout=0.0, dtype=dtype)


@pytest.mark.parametrize("policy", sorted(TOLERANCE))
@pytest.mark.parametrize("preset", ["vanilla_tiny", "vidtr_tiny", "cvidtr_tiny"])
def test_mixed_precision_matches_float32(preset, policy):
    full = _model(preset, None)
    sd = seeded_state_dict({k: np.shape(v) for k, v in gluonmm.to_state_dict(full).items()}, scale=0.1)
    gluonmm.load_state_dict(full, sd)
    mixed = _model(preset, policy)
    gluonmm.load_state_dict(mixed, sd)
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in mixed.weights)
    clip = np.random.default_rng(0).normal(size=(2, full.backbone.num_frames, 32, 32, 3)).astype("float32")
    # One compiled call each on JAX, the path `predict` takes there (eagerly, every op compiles anew).
    want = to_numpy(run_compiled(lambda x: full(x, training=False), clip))
    out = run_compiled(lambda x: mixed(x, training=False), clip)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    got = to_numpy(keras.ops.cast(out, "float32"))
    scale = np.abs(want).max()
    assert scale > 0.1  # logits of a real size, so the relative bound means something
    assert np.abs(got - want).max() <= TOLERANCE[policy] * scale


def test_mixed_bfloat16_is_close_to_float32():
    keras.utils.set_random_seed(3)
    reference = build_model("vidtr_tiny")
    x = np.random.default_rng(1).standard_normal((2, 4, 32, 32, 3)).astype("float32")
    expected = to_numpy(run_compiled(lambda x: reference(x, training=False), x))  # one compiled call on JAX
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = build_model("vidtr_tiny")
        run_compiled(mixed, x)
    finally:
        keras.config.set_dtype_policy(previous)
    mixed.set_weights(reference.get_weights())
    assert all(v.dtype == "float32" for v in mixed.trainable_variables)  # variables stay float32
    got = to_numpy(run_compiled(lambda x: mixed(x, training=False), x)).astype("float32")
    assert got.shape == expected.shape
    # bfloat16 keeps 8 mantissa bits: agreement to a few percent of the logits' scale, not exact.
    scale = float(np.abs(expected).max())
    assert np.abs(got - expected).max() <= 0.05 * scale + 0.02
    assert np.abs(got - expected).max() > 0  # really computed in lower precision


def test_mixed_bfloat16_backbone_computes_in_bfloat16_with_float32_weights():
    backbone = VidTrBackbone(**get_preset("cvidtr_tiny")["config"], dtype="mixed_bfloat16")
    backbone.build((1, 8, 32, 32, 3))
    out = run_compiled(backbone, np.ones((1, 8, 32, 32, 3), "float32"))  # one compiled call on JAX
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in backbone.weights)
    assert np.isfinite(to_numpy(keras.ops.cast(out, "float32"))).all()
