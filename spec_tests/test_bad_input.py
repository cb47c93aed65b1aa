"""Bad input is a clear error naming the problem, never a silent wrong answer."""

import numpy as np
import pytest

from vidtr_keras import VidTrBackbone, build_model
from vidtr_keras.convert import gluonmm
from vidtr_keras.layers import SeparableAttention, TubeletEmbedding

from helpers import load_fixture


@pytest.fixture(scope="module")
def tiny():
    return build_model("vidtr_tiny")


def test_wrong_rank(tiny):
    with pytest.raises(ValueError, match=r"expects \(batch, frames, height, width, 3\) clips.*rank 4"):
        tiny(np.zeros((4, 32, 32, 3), "float32"))


def test_wrong_channels(tiny):
    with pytest.raises(ValueError, match="got 4 channels"):
        tiny(np.zeros((1, 4, 32, 32, 4), "float32"))
    with pytest.raises(ValueError, match="looks channels-first"):
        tiny(np.zeros((1, 3, 4, 32, 32), "float32"))
    with pytest.raises(ValueError, match="expected 3 channels"):
        TubeletEmbedding(8, (1, 8, 8))(np.zeros((1, 4, 32, 32, 3), "float32")).shape and tiny.backbone.get_layer(
            "patch_embedding"
        )(np.zeros((1, 4, 32, 32, 4), "float32"))


def test_frames_or_size_not_divisible_by_the_patch():
    with pytest.raises(ValueError, match="frames=5 is not divisible by the patch size 2"):
        TubeletEmbedding(8, (2, 4, 4))(np.zeros((1, 5, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="height=30 is not divisible by the patch size 8"):
        build_model("vidtr_tiny")(np.zeros((1, 4, 30, 32, 3), "float32"))
    with pytest.raises(ValueError, match="image height=30 is not divisible"):
        build_model("vidtr_tiny", image_size=30)


def test_heads_not_dividing_the_width():
    with pytest.raises(ValueError, match="num_heads=4 does not divide hidden_dim=30"):
        build_model("vidtr_tiny", hidden_dim=30)
    with pytest.raises(ValueError, match="num_heads=4 does not divide the width 6"):
        SeparableAttention(4)(np.zeros((1, 2, 2, 6), "float32"))


def test_pooling_that_drops_every_frame():
    with pytest.raises(ValueError, match="would drop every frame"):
        build_model("cvidtr_tiny", frames_dropped=(4, 4))
    model = build_model("cvidtr_tiny")  # drops 2 + 2 of 8 frames: fine for 8, not for 4
    with pytest.raises(ValueError, match="drop every frame"):
        model(np.zeros((1, 4, 32, 32, 3), "float32"))


def test_inconsistent_schedules_and_layouts():
    with pytest.raises(ValueError, match="same length"):
        build_model("cvidtr_tiny", frames_dropped=(2,))
    with pytest.raises(ValueError, match="strictly increasing"):
        build_model("cvidtr_tiny", pool_layers=(1, 0))
    with pytest.raises(ValueError, match="class-token grid needs separable attention"):
        build_model("vanilla_tiny", class_token_layout="grid")
    with pytest.raises(ValueError, match="spatial-only model has no temporal attention"):
        build_model("cvidtr_tiny", attention="spatial")


def test_unknown_preset_and_override():
    with pytest.raises(ValueError, match="Unknown preset 'vidtr_xl'.*vidtr_s"):
        build_model("vidtr_xl")
    with pytest.raises(TypeError, match="Unknown override"):
        build_model("vidtr_tiny", frames=8)


def test_checkpoint_missing_unexpected_and_misshaped_tensors_are_listed():
    config, sd, _, _ = load_fixture("vidtr_split_t8")
    bad = dict(sd)
    del bad["encoder.layers.1.linear1.bias"]
    bad["encoder.layers.7.linear1.bias"] = np.zeros(3, "float32")
    bad["fc.weight"] = np.zeros((11, 48), "float32")
    with pytest.raises(gluonmm.CheckpointMismatchError) as err:
        gluonmm.from_state_dict(bad, config)
    text = str(err.value)
    assert "missing tensors (1): encoder.layers.1.linear1.bias" in text
    assert "unexpected tensors (1): encoder.layers.7.linear1.bias" in text
    assert "fc.weight: checkpoint (11, 48) vs model (10, 48)" in text


def test_config_checkpoint_mismatch():
    config, sd, _, _ = load_fixture("vidtr_split_t8")
    with pytest.raises(gluonmm.CheckpointMismatchError, match=r"missing tensors \(12\): encoder.layers.3"):
        gluonmm.from_state_dict(sd, {**config, "num_encoder_layers": 4})
    with pytest.raises(gluonmm.CheckpointMismatchError, match="cls_s: checkpoint"):
        gluonmm.from_state_dict(sd, {**config, "temporal_size": 6}, image_size=(56, 56))
    with pytest.raises(ValueError, match="Unknown official class"):
        gluonmm.from_state_dict(sd, {**config, "cls": "TimeSformer"})
    with pytest.raises(ValueError, match="merge_index=3"):
        gluonmm.from_state_dict(sd, {**config, "merge_later": True, "merge_index": 3})


def test_nothing_is_assigned_from_a_bad_checkpoint():
    config, sd, _, _ = load_fixture("vanilla_t4")
    model = gluonmm.from_state_dict(sd, config)
    before = [w.copy() for w in model.get_weights()]
    broken = {k: v + 1 for k, v in sd.items()}
    del broken["cls"]
    with pytest.raises(gluonmm.CheckpointMismatchError):
        gluonmm.load_state_dict(model, broken)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_unreadable_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        gluonmm.load_checkpoint(str(tmp_path / "absent.pth"))
    with pytest.raises(ValueError, match="non-square|not a square grid"):
        gluonmm.backbone_config(
            {
                "cls": "CompactVidTr",
                "d_model": 8,
                "nhead": 2,
                "num_encoder_layers": 1,
                "dim_feedforward": 8,
                "patch_size": [1, 4, 4],
                "temporal_size": 2,
            },
            {"pos_embedding": np.zeros((1, 1 + 2 * 6, 8))},
        )
    assert VidTrBackbone  # the public class is importable from the package root
