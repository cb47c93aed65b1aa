"""Parity with the official implementation: the three gluonmm fixtures reproduce the official logits."""

import numpy as np
import pytest

from vidtr_keras.convert import gluonmm

from helpers import FIXTURE_NAMES, GLUONMM, load_fixture, run_compiled, to_numpy


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_logits_within_tolerance(name):
    config, sd, clip, logits = load_fixture(name)
    model = gluonmm.from_state_dict(sd, config)
    got = to_numpy(run_compiled(lambda x: model(x, training=False), np.transpose(clip, (0, 2, 3, 4, 1))))
    assert np.abs(got - logits).max() < 1e-4


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_ddp_prefix_and_npz_loader(name):
    config, sd, clip, logits = load_fixture(name)
    prefixed = {"module." + k: v for k, v in sd.items()}
    model = gluonmm.from_state_dict(prefixed, config)
    loaded = gluonmm.load_checkpoint(str(GLUONMM / f"{name}.npz"))
    assert set(loaded) == set(sd)
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").kernel), sd["fc.weight"].T)
    # round trip back to official names is exact
    back = gluonmm.to_state_dict(model)
    assert set(back) == set(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k], err_msg=k)


def test_quirks_matter_for_parity():
    """Getting a quirk of the official code wrong moves the logits well beyond the tolerance."""
    config, sd, clip, logits = load_fixture("cvidtr_t8")
    model = gluonmm.from_state_dict(sd, config)
    x = np.transpose(clip, (0, 2, 3, 4, 1))
    for i in config["layer_pool"]:
        model.backbone.get_layer(f"encoder_block_{i}").attn.pooling.second_softmax = False
    wrong = to_numpy(run_compiled(lambda c: model(c, training=False), x))
    assert np.abs(wrong - logits).max() > 1e-3
