"""Fixed weights and clip give the same logits on every backend: each backend's run compares with
the expected-output file written once by make_expected_logits.py (the numpy oracle's logits) and committed."""

import numpy as np
import pytest

from helpers import FIXTURES, to_numpy
from make_expected_logits import PRESETS, fixed_model_and_clip
from oracle import official_forward


@pytest.mark.parametrize("preset", PRESETS)
def test_logits_equal_the_committed_expected_output(preset):
    with np.load(FIXTURES / "expected_logits.npz") as expected:
        want, clip_saved = expected[f"{preset}/logits"], expected[f"{preset}/clip"]
    model, sd, clip = fixed_model_and_clip(preset)
    np.testing.assert_array_equal(clip, clip_saved)  # the seeded inputs are the same everywhere
    got = to_numpy(model(clip, training=False))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_expected_output_is_the_oracle_output(preset):
    """The committed file is not just whatever one backend printed: the numpy oracle agrees."""
    from vidtr_keras.convert import gluonmm

    with np.load(FIXTURES / "expected_logits.npz") as expected:
        want = expected[f"{preset}/logits"]
    model, sd, clip = fixed_model_and_clip(preset)
    b = model.backbone
    config = {
        "d_model": b.hidden_dim,
        "nhead": b.num_heads,
        "num_encoder_layers": b.num_layers,
        "dim_feedforward": b.mlp_dim,
        "patch_size": list(b.patch_size),
        "activity_num": 10,
        "temporal_size": b.num_frames,
    }
    if b.attention == "joint":
        config.update({"cls": "VidTr", "merge_later": True, "merge_index": -1})
    elif b.pool_layers:
        config.update(
            {"cls": "CompactVidTr", "layer_pool": list(b.pool_layers), "number_of_keys": list(b.frames_dropped)}
        )
    else:
        config.update({"cls": "VidTr", "merge_later": False})
    assert gluonmm.backbone_config(config, sd)["image_size"] == b.image_size
    ref = official_forward(sd, config, np.transpose(clip, (0, 4, 1, 2, 3)))
    np.testing.assert_allclose(want, ref, atol=1e-4)
