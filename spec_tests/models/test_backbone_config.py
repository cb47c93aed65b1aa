"""One backbone configuration: `BackboneConfig` holds the defaults and checks that `VidTrBackbone` and the
analytic FLOP/memory model (`complexity.model_spec`) share."""

import dataclasses
import inspect

import pytest

from vidtr_keras.complexity import model_spec
from vidtr_keras.layers.utils import to_pair, to_triple
from vidtr_keras.models import VidTrBackbone, get_preset, preset_names
from vidtr_keras.models.config import BackboneConfig


def test_backbone_signature_defaults_are_the_config_defaults():
    signature = inspect.signature(VidTrBackbone.__init__).parameters
    for field in dataclasses.fields(BackboneConfig):
        assert field.name in signature, field.name
        assert signature[field.name].default == field.default, field.name


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"attention": "spatial", "pool_layers": (0,), "frames_dropped": (1,)}, "no temporal attention to pool"),
        ({"pool_layers": (0, 1), "frames_dropped": (2, 2)}, "would drop every frame"),
        ({"num_heads": 3}, "num_heads=3 does not divide hidden_dim=32"),
        ({"attention": "joint", "class_token_layout": "grid"}, "needs separable attention"),
        ({"class_token_layout": "single"}, "some layers must be joint"),
        ({"position_embedding_every_layer": True, "pool_layers": (0,), "frames_dropped": (1,)}, "frame pooling"),
        ({"image_size": 30}, "image height=30 is not divisible"),
        ({"pool_layers": (5,), "frames_dropped": (1,)}, "must lie in"),
        ({"attention": "diagonal"}, "attention must be one of"),
        ({"patch_size": (1, 8)}, "patch_size must be an int or"),
    ],
)
def test_the_flop_model_rejects_exactly_what_the_model_rejects(overrides, message):
    config = {**get_preset("vidtr_tiny")["config"], **overrides}
    with pytest.raises(ValueError, match=message) as from_model:
        VidTrBackbone(**config)
    with pytest.raises(ValueError, match=message) as from_spec:
        model_spec(config)
    assert str(from_model.value) == str(from_spec.value)


def test_every_preset_resolves_identically_in_the_model_and_the_flop_model():
    for name in preset_names():
        spec = model_spec(name)
        resolved = BackboneConfig(**get_preset(name)["config"])
        assert spec.backbone_kwargs() == resolved.backbone_kwargs(), name
        assert spec.plan == resolved.layer_plan


def test_cvidtr_defaults_are_resolved():
    config = BackboneConfig(pool_layers=(1, 3, 5), frames_dropped=(2, 2, 2))
    assert (config.class_token_layout, config.joint_from_layer) == ("single", 6)
    assert config.frames_after_each_layer() == [8, 6, 6, 4, 4, 2, 2, 2, 2, 2, 2, 2]
    assert BackboneConfig().class_token_layout == "grid" and BackboneConfig().joint_from_layer is None
    assert BackboneConfig(attention="joint").class_token_layout == "single"


def test_size_helpers():
    assert to_pair(224) == (224, 224) and to_pair((240, 320)) == (240, 320)
    assert to_triple(16) == (16, 16, 16) and to_triple([2, 16, 16]) == (2, 16, 16)
    with pytest.raises(ValueError, match="image_size must be an int or \\(h, w\\)"):
        to_pair((1, 2, 3), "image_size")
    with pytest.raises(ValueError, match="patch_size must be positive"):
        to_triple((0, 16, 16), "patch_size")
