"""The `vidtr` command as a user runs it: demo, presets, convert (official checkpoints), and the
`train` flags generated from `TrainConfig`."""

import argparse
import ast
import dataclasses
import functools
import json
import pathlib
import subprocess
import sys
import typing

import keras
import numpy as np
import pytest

import vidtr_keras.cli as cli_package
from vidtr_keras.cli import build_parser, main
from vidtr_keras.cli.args import dataclass_from_args
from vidtr_keras.training import TrainConfig

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


# === `vidtr train`: one flag per TrainConfig field, with the field's default ===

FIELDS_WITHOUT_FLAG = {"clip_len"}  # the clip length comes from the model on the command line


@functools.cache
def train_parser():
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["train"]
    raise AssertionError("no train command")


def train_actions():
    return {action.dest: action for action in train_parser()._actions}


def flag_of(name):
    return max(train_actions()[name].option_strings, key=len)


def test_every_train_config_field_is_a_train_flag_with_the_fields_default():
    actions = train_actions()
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    assert {name for name in fields if name not in actions} == FIELDS_WITHOUT_FLAG
    for name, field in fields.items():
        if name in FIELDS_WITHOUT_FLAG:
            continue
        action = actions[name]
        assert action.option_strings, name
        if field.default is dataclasses.MISSING:
            assert action.required, name
        else:
            assert action.default == field.default and type(action.default) is type(field.default), name


def value_for(field):
    """A command line for one field and the value it must give: another than the default."""
    kind = typing.get_type_hints(TrainConfig)[field.name]
    flag = flag_of(field.name)
    if kind is bool:
        return [flag], not field.default
    if "choices" in field.metadata:
        choice = [c for c in field.metadata["choices"] if c != field.default][-1]
        return [flag, choice], choice
    if field.name == "threads":
        return [flag, "3"], 3
    if field.name == "mesh":
        return [flag, "2X4"], "2x4"
    if typing.get_origin(kind) is list:
        return [flag, "3", "7"], [3, 7]
    if kind is int:
        return [flag, "3"], 3
    if kind is float:
        return [flag, "0.5"], 0.5
    return [flag, "some/where"], "some/where"


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig) if f.name not in FIELDS_WITHOUT_FLAG])
def test_a_train_flag_lands_in_train_config(name):
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    argv, expected = value_for(field)
    base = [] if name == "output" else ["--output", "run"]
    config = dataclass_from_args(TrainConfig, train_parser().parse_args(base + argv))
    assert getattr(config, name) == expected and expected != field.default
    others = dataclass_from_args(TrainConfig, train_parser().parse_args(["--output", "run"]))
    assert getattr(others, name) == (field.default if name != "output" else "run")


def test_train_flags_are_those_of_the_released_command_line():
    """The flag names users and scripts rely on; the help of each says its default."""
    flags = {s for action in train_parser()._actions for s in action.option_strings}
    expected = (
        "--model --weights --rate --crop-size --train --val --root --val-root --labels --num-classes --output "
        "--epochs --batch-size --lr --momentum --weight-decay --milestones --gamma --short-side --seed --workers "
        "--resume --overwrite --distribute --jit-compile --threads --no-flip --remat --mixed-precision "
        "--multi-label --no-check-videos --verbose --quiet "
        # the fine-tuning recipe (issue 21)
        "--optimizer --schedule --warmup-epochs --min-lr --label-smoothing --mixup --cutmix --layer-decay "
        "--drop-path --dropout --freeze-backbone "
        # data-loading worker processes (issue 23)
        "--loader "
        # model parallelism (issue 22)
        "--mesh"
    ).split()
    assert flags - {"-h", "--help"} == set(expected)
    helps = {max(a.option_strings, key=len): a.help for a in train_parser()._actions if a.option_strings}
    assert "(default 50)" in helps["--epochs"] and "default 0.01 for sgd" in helps["--lr"]
    assert "--gamma" in helps["--milestones"] and "`" not in helps["--milestones"]


def test_a_bad_thread_count_is_an_error_that_names_the_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--output", "run", "--threads", "0"])
    assert "--threads must be auto, default or a positive number, got '0'" in capsys.readouterr().err


def test_command_modules_share_only_cli_args():
    """A command module imports the library and `cli/args.py`, never another command module."""
    folder = pathlib.Path(cli_package.__file__).parent
    for path in sorted(folder.glob("*.py")):
        if path.name in ("__init__.py", "__main__.py", "args.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vidtr_keras.cli"):
                assert node.module == "vidtr_keras.cli.args", f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("vidtr_keras.cli") for a in node.names), path.name
    assert {p.stem for p in folder.glob("*.py")} >= set(cli_package.COMMAND_MODULES)
