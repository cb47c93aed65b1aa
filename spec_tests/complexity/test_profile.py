"""`vidtr_keras.complexity.inference_profile`: the forward pass's operations at a model's shapes, timed
alone. Specs: the operations cover exactly the encoder's analytic multiply-adds (nothing left out or
counted twice), every row is measured, and a model it cannot profile is refused with a clear error."""

import pytest

from vidtr_keras.complexity import flops
from vidtr_keras.complexity.profile import inference_profile

GEOMETRY = {"frames": 2, "image_size": 32}


@pytest.fixture(scope="module")
def rows():
    return inference_profile("vidtr_tiny", runs=1, **GEOMETRY)


def test_operations_cover_the_encoders_analytic_count(rows):
    report = flops("vidtr_tiny", **GEOMETRY)
    encoder = sum(m for c, m in report.by_component().items() if c not in ("patch_embedding", "head"))
    layer_flop = sum(r.count * r.flop for r in rows if r.kind == "layer")
    assert layer_flop == 2 * encoder
    whole = [r for r in rows if r.kind == "model"]
    assert len(whole) == 1 and whole[0].flop == report.flops


def test_matmul_rows_are_the_projections_of_the_layer_rows(rows):
    matmul = sum(r.count * r.flop for r in rows if r.kind == "matmul")
    projections = sum(r.count * r.flop for r in rows if r.kind == "layer" and "attention" not in r.name)
    assert matmul == projections > 0


def test_every_row_is_timed(rows):
    assert len(rows) == 11
    for r in rows:
        assert r.seconds > 0, r.name
        assert r.count >= 1


@pytest.mark.parametrize("preset", ["cvidtr_tiny", "vanilla_tiny"])
def test_refuses_models_it_does_not_profile(preset):
    with pytest.raises(ValueError, match="not a separable model without temporal pooling"):
        inference_profile(preset, runs=1, image_size=32)  # each preset at its own frame count
