"""16-frame official models: the official code adds the position embedding in EVERY layer exactly when
`temporal_size == 16` (`pos_embedding_layer_wise = temporal_size == 16` in the released VidTr code), and
only at layer 0 otherwise. The shipped fixtures use 4 and 8 frames, so these cases are generated
through the numpy oracle (which implements the quirk from the description of the official code, not
from the package) and go through the official checkpoint format end to end.
"""

import dataclasses
import json

import numpy as np
import pytest

from vidtr_keras.convert import gluonmm
from vidtr_keras.models.config import BackboneConfig
from vidtr_keras.models.presets import PRESETS

import oracle
from helpers import run_compiled, to_numpy
from oracle_models import backbone_forward
from strategies import official_state_dict

GRID = (2, 2)  # patch grid (2 x 2 patches of 4 x 4 pixels, square as in the official code): 16 frames stay cheap
BASE = {
    "d_model": 8,
    "nhead": 2,
    "num_encoder_layers": 2,
    "dim_feedforward": 16,
    "patch_size": [1, 4, 4],
    "activity_num": 3,
    "temporal_size": 16,
    "normalize_before": True,
    "dropout": 0.1,
}
KINDS = {
    "split": {"cls": "VidTr", "merge_later": False, "merge_index": 6},
    "vanilla": {"cls": "VidTr", "merge_later": True, "merge_index": -1},
    "compact": {"cls": "CompactVidTr", "layer_pool": [0], "number_of_keys": [8]},
}


def _official_npz(tmp_path, config, seed):
    """An .npz in the layout of the official-output fixtures (`sd/<name>`, `config_json`, `input`,
    `logits`), with the logits computed by the oracle."""
    rng = np.random.default_rng(seed)
    sd = official_state_dict(rng, config, GRID)
    clip = rng.normal(size=(2, 3, 16, GRID[0] * 4, GRID[1] * 4)).astype("float32")  # (B, C, T, H, W)
    logits = oracle.official_forward(sd, config, clip)
    path = tmp_path / "official_t16.npz"
    np.savez(path, config_json=json.dumps(config), input=clip, logits=logits, **{f"sd/{k}": v for k, v in sd.items()})
    return path


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_16_frame_official_checkpoints_match_the_oracle(kind, tmp_path):
    config = {**BASE, **KINDS[kind]}
    path = _official_npz(tmp_path, config, seed=16)
    with np.load(path) as data:
        config_json, clip, logits = str(data["config_json"]), data["input"], data["logits"]
    state_dict = gluonmm.load_checkpoint(str(path))
    model = gluonmm.from_state_dict(state_dict, config_json)
    channels_last = np.transpose(clip, (0, 2, 3, 4, 1))
    got = to_numpy(run_compiled(lambda x: model(x, training=False), channels_last))  # one compiled call on JAX
    np.testing.assert_allclose(got, logits, atol=1e-4, rtol=1e-4)
    assert model.backbone.position_embedding_every_layer == (kind != "compact")


@pytest.mark.parametrize("kind", ["split", "vanilla"])
def test_the_16_frame_quirk_moves_the_logits(kind):
    """Without the every-layer position embedding the oracle's logits differ well beyond the tolerance
    above, so a converter that ignores the quirk fails that test."""
    config = {**BASE, **KINDS[kind]}
    rng = np.random.default_rng(16)
    sd = official_state_dict(rng, config, GRID)
    clip = rng.normal(size=(2, 3, 16, GRID[0] * 4, GRID[1] * 4)).astype("float32")
    right = oracle.official_forward(sd, config, clip)
    resolved = BackboneConfig(**gluonmm.backbone_config(config, sd))
    assert resolved.position_embedding_every_layer
    wrong = backbone_forward(
        sd, dataclasses.replace(resolved, position_embedding_every_layer=False), np.transpose(clip, (0, 2, 3, 4, 1))
    )
    np.testing.assert_allclose(backbone_forward(sd, resolved, np.transpose(clip, (0, 2, 3, 4, 1))), right, atol=1e-9)
    assert np.abs(wrong - right).max() > 1e-2


def test_released_configs_resolve_to_their_presets():
    """Every released official config converts to exactly the backbone config of the preset that carries
    its name (vidtr_m, 16 frames: position embedding in every layer)."""
    assert sorted(gluonmm.RELEASED_CONFIGS) == sorted(
        e["official_name"] for e in PRESETS.values() if e["official_name"]
    )
    for name, entry in PRESETS.items():
        if not entry["official_name"]:
            continue
        converted = BackboneConfig(**gluonmm.backbone_config(gluonmm.RELEASED_CONFIGS[entry["official_name"]]))
        assert converted == BackboneConfig(**entry["config"]), name
    assert PRESETS["vidtr_m"]["config"]["position_embedding_every_layer"]
