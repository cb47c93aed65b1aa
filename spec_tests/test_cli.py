"""The `vidtr` command as a user runs it: demo, presets, convert (official checkpoints)."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from vidtr_keras.cli import main

from helpers import GLUONMM, load_fixture, run_compiled, to_numpy


def test_demo_builds_a_preset_prints_its_summary_and_runs_a_clip(capsys):
    assert main(["demo", "cvidtr_tiny", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "cvidtr_tiny_backbone" in out and "Total params" in out
    assert "temporal tokens after each layer: [6, 4, 4]" in out
    assert "clip (2, 8, 32, 32, 3) -> logits (2, 10)" in out


def test_demo_at_another_clip_length(capsys):
    assert main(["demo", "vidtr_tiny", "--frames", "8", "--image-size", "48"]) == 0
    assert "clip (1, 8, 48, 48, 3) -> logits (1, 10)" in capsys.readouterr().out


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("vanilla_s", "vidtr_s", "vidtr_m", "vidtr_l", "cvidtr_s", "cvidtr_s_paper", "cvidtr_m", "cvidtr_l"):
        assert name in out


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_convert_an_official_checkpoint(tmp_path, suffix, capsys):
    config, sd, clip, logits = load_fixture("cvidtr_t8")
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    out = tmp_path / f"model{suffix}"
    assert main(["convert", str(GLUONMM / "cvidtr_t8.npz"), "--config", str(config_file), "--output", str(out)]) == 0
    assert out.exists() and "parameters" in capsys.readouterr().out
    if suffix == ".keras":
        model = keras.saving.load_model(out)
    else:
        from vidtr_keras.convert import gluonmm

        model = gluonmm.from_state_dict({k: np.zeros_like(v) for k, v in sd.items()}, config)
        model.load_weights(out)
    got = to_numpy(run_compiled(lambda x: model(x, training=False), np.transpose(clip, (0, 2, 3, 4, 1))))
    assert np.abs(got - logits).max() < 1e-4


def test_convert_reports_bad_input_clearly(tmp_path, capsys):
    assert (
        main(
            [
                "convert",
                str(tmp_path / "none.pth"),
                "--config",
                "vidtr_s_8x8_patch16_224_k400",
                "--output",
                str(tmp_path / "m.keras"),
            ]
        )
        == 2
    )
    assert "No checkpoint" in capsys.readouterr().out
    assert (
        main(
            [
                "convert",
                str(GLUONMM / "vanilla_t4.npz"),
                "--config",
                "vidtr_s_8x8_patch16_224_k400",
                "--output",
                str(tmp_path / "m.keras"),
            ]
        )
        == 2
    )
    out = capsys.readouterr().out
    assert "does not fit the official VidTr config" in out and "another model" in out
    config, _, _, _ = load_fixture("vanilla_t4")
    assert (
        main(
            [
                "convert",
                str(GLUONMM / "vanilla_t4.npz"),
                "--config",
                json.dumps({**config, "num_encoder_layers": 3}),
                "--output",
                str(tmp_path / "m.keras"),
            ]
        )
        == 2
    )
    out = capsys.readouterr().out
    assert "missing tensors" in out and "encoder.layers.2" in out
    assert (
        main(
            ["convert", str(GLUONMM / "vanilla_t4.npz"), "--config", "{not json", "--output", str(tmp_path / "m.keras")]
        )
        == 2
    )
    assert "neither a JSON file" in capsys.readouterr().out


def test_pth_checkpoints(tmp_path):
    """Real .pth files (trained {'model': ...} with module. prefix, or bare) where torch is installed;
    elsewhere a clear message says torch is needed."""
    from vidtr_keras.convert import gluonmm

    config, sd, clip, logits = load_fixture("vanilla_t4")
    path = tmp_path / "ckpt.pth"
    torch = pytest.importorskip("torch", reason="reading .pth files needs torch (the case without it is tested below)")
    torch.save({"model": {"module." + k: torch.from_numpy(v) for k, v in sd.items()}, "epoch": 49}, path)
    loaded = gluonmm.load_checkpoint(str(path))
    assert set(loaded) == set(sd)
    model = gluonmm.from_state_dict(loaded, config)
    got = to_numpy(run_compiled(lambda x: model(x, training=False), np.transpose(clip, (0, 2, 3, 4, 1))))
    assert np.abs(got - logits).max() < 1e-4
    bare = tmp_path / "bare.pth"
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, bare)
    assert set(gluonmm.load_checkpoint(str(bare))) == set(sd)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="Could not read"):
        gluonmm.load_checkpoint(str(junk))


def test_pth_without_torch_says_torch_is_needed(tmp_path, monkeypatch):
    from vidtr_keras.convert import gluonmm

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    path = tmp_path / "ckpt.pth"
    path.write_bytes(b"not read")
    with pytest.raises(ImportError, match="needs torch"):
        gluonmm.load_checkpoint(str(path))


def test_console_script_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "vidtr_keras.cli", "presets"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "vidtr_tiny" in result.stdout


def test_inflate_without_keras_hub_says_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # as if keras-hub were not installed
    (tmp_path / "vit.keras").write_bytes(b"not read")
    for source in ("keras_hub:vit_base_patch16_224_imagenet", str(tmp_path / "vit.keras")):
        assert main(["inflate", source, "--preset", "vidtr_tiny", "--output", str(tmp_path / "m.keras")]) == 2
        assert "keras-hub" in capsys.readouterr().out


def test_inflate_names_a_missing_keras_file(tmp_path, capsys):
    pytest.importorskip("keras_hub", reason="reading a saved ViTBackbone needs keras-hub")
    assert (
        main(
            ["inflate", str(tmp_path / "absent.keras"), "--preset", "vidtr_tiny", "--output", str(tmp_path / "m.keras")]
        )
        == 2
    )
    assert "absent.keras" in capsys.readouterr().out
