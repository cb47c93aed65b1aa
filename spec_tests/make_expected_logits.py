"""Writes spec_tests/fixtures/expected_logits.npz once (run on any backend, then commit the file):
fixed weights (seeded numpy, official layout) and a fixed clip for each tiny preset, and the logits of
the numpy ORACLE (oracle_models.backbone_forward, float64) for them, not the package's own output.
test_cross_backend.py checks every backend against it; models/test_model_oracle.py regenerates the logits
from the oracle and compares them with the file.

    KERAS_BACKEND=jax python spec_tests/make_expected_logits.py
"""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))

PRESETS = ("vanilla_tiny", "vidtr_tiny", "cvidtr_tiny")
OUT = pathlib.Path(__file__).parent / "fixtures" / "expected_logits.npz"


def fixed_model_and_clip(preset):
    from vidtr_keras import build_model
    from vidtr_keras.convert import gluonmm

    model = build_model(preset)
    rng = np.random.default_rng(2021)
    names = gluonmm.to_state_dict(model)
    sd = {
        k: (
            rng.normal(0, 0.3, v.shape)
            + (1.0 if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k == "encoder.norm.weight" else 0.0)
        ).astype("float32")
        for k, v in sorted(names.items())
    }
    gluonmm.load_state_dict(model, sd)
    frames = model.backbone.num_frames
    clip = rng.normal(size=(2, frames, 32, 32, 3)).astype("float32")
    return model, sd, clip


def main():
    from oracle_models import backbone_forward

    out = {}
    for preset in PRESETS:
        model, sd, clip = fixed_model_and_clip(preset)
        out[f"{preset}/clip"] = clip
        out[f"{preset}/logits"] = backbone_forward(sd, model.backbone.backbone_config, clip).astype("float32")
    out["backend"] = np.array("numpy oracle")
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
