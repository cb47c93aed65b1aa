"""Whole backbones against the numpy oracle for variants the official fixtures do not have: the
class-token grid with pooling (`keep_first`), every Table 4 ablation that has an official weight layout
(attention orders, cubic tubelets, average pooling, pooling schedules, single softmax), GELU and the
every-layer position embedding. Also: the cross-backend fixture's logits are the oracle's.
"""

import numpy as np
import pytest

from vidtr_keras import build_model
from vidtr_keras.convert import gluonmm

import make_expected_logits
from helpers import FIXTURES, run_compiled, to_numpy
from oracle_models import backbone_forward, seeded_state_dict

SMALL = {"image_size": 16, "dropout": 0.0, "attention_dropout": 0.0, "head_dropout": 0.0}
CASES = {
    "vanilla": ("vanilla_tiny", {}),
    "vidtr": ("vidtr_tiny", {}),
    "cvidtr": ("cvidtr_tiny", {}),
    # the class-token grid with std-topK pooling: the class-token row is always kept (keep_first)
    "grid_std_topk": (
        "vidtr_tiny",
        {"num_frames": 6, "pool_layers": (0, 1), "frames_dropped": (2, 1), "class_token_layout": "grid"},
    ),
    "grid_average": (
        "vidtr_tiny",
        {
            "num_frames": 6,
            "pool_layers": (1,),
            "frames_dropped": (3,),
            "class_token_layout": "grid",
            "pooling": "average",
        },
    ),
    # Table 4b: attention orders
    "spatial_temporal": ("vidtr_tiny", {"attention": "spatial_temporal"}),
    "spatial_only": ("vidtr_tiny", {"attention": "spatial"}),
    "temporal_only": ("vidtr_tiny", {"attention": "temporal"}),
    "spatial_temporal_pooling": ("cvidtr_tiny", {"attention": "spatial_temporal"}),
    # Table 4a: cubic tubelets
    "cubic_2x8x8": ("vidtr_tiny", {"patch_size": (2, 8, 8), "num_frames": 8}),
    # Table 4d: temporal average pooling; Tables 4e/4f: other schedules; Eq. (9)'s single softmax
    "average_pooling": ("cvidtr_tiny", {"pooling": "average", "frames_dropped": (4, 2)}),
    "schedule_late": ("cvidtr_tiny", {"pool_layers": (1,), "frames_dropped": (4,)}),
    "schedule_first": ("cvidtr_tiny", {"pool_layers": (0,), "frames_dropped": (6,), "joint_from_layer": 2}),
    "single_softmax": ("cvidtr_tiny", {"second_softmax": False}),
    # ViT's GELU, and the official 16-frame position embedding in every layer
    "gelu_pos_every_layer": ("vidtr_tiny", {"mlp_activation": "gelu", "position_embedding_every_layer": True}),
    "vanilla_pos_every_layer": ("vanilla_tiny", {"position_embedding_every_layer": True}),
}


def _seeded_model(preset, overrides, seed=0):
    model = build_model(preset, num_classes=5, **SMALL, **overrides)
    shapes = {name: np.shape(value) for name, value in gluonmm.to_state_dict(model).items()}
    sd = seeded_state_dict(shapes, seed=seed)
    gluonmm.load_state_dict(model, sd)
    return model, sd


@pytest.mark.parametrize("case", sorted(CASES))
def test_backbone_variants_match_the_oracle(case):
    preset, overrides = CASES[case]
    model, sd = _seeded_model(preset, overrides)
    config = model.backbone.backbone_config
    clip = np.random.default_rng(1).normal(size=(2, config.num_frames, 16, 16, 3)).astype("float32")
    got = to_numpy(run_compiled(lambda x: model(x, training=False), clip))
    want = backbone_forward(sd, config, clip)
    np.testing.assert_allclose(got, want, atol=5e-4, rtol=1e-4)


def test_the_oracle_tells_the_variants_apart():
    """The same weights give clearly different logits with and without keep_first's class-token row,
    the second softmax and the every-layer position embedding, so the cases above can fail."""
    import dataclasses

    model, sd = _seeded_model(*CASES["grid_std_topk"])
    config = model.backbone.backbone_config
    clip = np.random.default_rng(1).normal(size=(2, config.num_frames, 16, 16, 3))
    base = backbone_forward(sd, config, clip)
    for change in ({"second_softmax": False}, {"pool_layers": (), "frames_dropped": ()}):
        other = backbone_forward(sd, dataclasses.replace(config, **change), clip)
        assert np.abs(other - base).max() > 1e-2, change
    model, sd = _seeded_model(*CASES["gelu_pos_every_layer"])
    config = model.backbone.backbone_config
    clip = np.random.default_rng(1).normal(size=(2, config.num_frames, 16, 16, 3))
    other = backbone_forward(sd, dataclasses.replace(config, position_embedding_every_layer=False), clip)
    assert np.abs(other - backbone_forward(sd, config, clip)).max() > 1e-2


@pytest.mark.parametrize("preset", make_expected_logits.PRESETS)
def test_expected_logits_fixture_is_the_oracle(preset):
    """spec_tests/fixtures/expected_logits.npz (the cross-backend reference) holds the ORACLE's logits
    for its seeded weights and clips, not the package's: regenerating them here from the oracle gives
    the stored values."""
    model, sd, clip = make_expected_logits.fixed_model_and_clip(preset)
    with np.load(FIXTURES / "expected_logits.npz") as data:
        np.testing.assert_array_equal(data[f"{preset}/clip"], clip)
        stored = data[f"{preset}/logits"]
    want = backbone_forward(sd, model.backbone.backbone_config, clip)
    np.testing.assert_allclose(stored, want, atol=1e-5, rtol=1e-5)
