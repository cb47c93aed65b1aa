"""`vidtr train` and `vidtr_keras.training.train` end to end on tiny models and synthetic videos: the
released recipe (milestones, `CoupledSGD`), a checkpoint per epoch written as a preset directory in the
run directory, exact `--resume` after a kill, a bad list stops training before its first step,
fine-tuning from converted weights, remat and mixed precision, and every flag reaching `TrainConfig`
(data-parallel training: test_distributed.py).
"""

import csv
import json
import os
from unittest import mock

import keras
import numpy as np
import pytest

from vidtr_keras import build_model, cli, training
from vidtr_keras.models.loading import load_model

from helpers import BACKEND, to_numpy, vidtr

# One JAX compilation per test model instead of one per run: eager JAX caches its primitives.
JIT = "off" if BACKEND == "jax" else "auto"


def weights_of(spec):
    return [to_numpy(v) for v in load_model(spec).model.weights]


# --------------------------------------------------------------------------------------------------
# train


def train_args(demo, output, *extra):
    return [
        "train",
        "--model",
        "vidtr_tiny",
        "--train",
        demo / "train.txt",
        "--val",
        demo / "val.txt",
        "--root",
        demo,
        "--labels",
        demo / "classes.txt",
        "--rate",
        "2",
        "--batch-size",
        "4",
        "--epochs",
        "2",
        "--output",
        output,
        "--workers",
        "2",
        "--jit-compile",
        JIT,
        "--verbose",
        "0",
        *extra,
    ]


@pytest.fixture(scope="module")
def finished_run(demo, tmp_path_factory):
    """An uninterrupted two-epoch run of the command line."""
    output = tmp_path_factory.mktemp("runs") / "uninterrupted"
    assert cli.main([str(a) for a in train_args(demo, output)]) == 0
    return output


def read_log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_train_writes_a_checkpoint_each_epoch_and_a_csv_log(finished_run):
    pointer = json.loads((finished_run / "checkpoint.json").read_text())
    assert pointer["epoch"] == 2 and pointer["checkpoint"] == "epoch_002"
    assert sorted(os.listdir(finished_run)) == ["checkpoint.json", "epoch_002", "log.csv"]
    # the last checkpoint is a preset directory (plus the random generators' states)
    files = ["classes.txt", "config.json", "metadata.json", "model.weights.h5", "rng.npz"]
    assert sorted(os.listdir(finished_run / "epoch_002")) == files
    assert (finished_run / "epoch_002" / "classes.txt").read_text().split() == [
        "moving_right",
        "moving_down",
        "moving_left",
        "moving_up",
    ]
    metadata = json.loads((finished_run / "epoch_002" / "metadata.json").read_text())
    assert metadata["epoch"] == 2 and metadata["clip"] == {"clip_len": 4, "rate": 2, "crop_size": 32}
    log = read_log(finished_run / "log.csv")
    assert [row["epoch"] for row in log] == ["1", "2"]
    # released recipe, milestones 25 and 40 of 50 scaled to 2 epochs: round(1.0) = 1, round(1.6) = 2
    assert [float(row["lr"]) for row in log] == [0.01, 0.001] and pointer["config"]["milestones"] == [1, 2]
    assert all(np.isfinite(float(row[k])) for row in log for k in ("loss", "accuracy", "val_loss", "val_accuracy"))
    model = load_model(finished_run, compile=True).model  # with the optimizer's state, as resume loads it
    assert isinstance(model.optimizer, training.CoupledSGD) and int(to_numpy(model.optimizer.iterations)) == 4
    assert model.optimizer.momentum == 0.9 and model.optimizer.l2_weight_decay == 1e-5
    assert model.output_shape == (None, 4)


def test_resume_after_a_kill_gives_the_weights_of_an_uninterrupted_run(demo, finished_run, tmp_path, capsys):
    output = tmp_path / "killed"

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:  # mid-way through epoch 2, after the epoch-1 checkpoint
                raise KeyboardInterrupt

    config = training.TrainConfig(
        output=str(output),
        model="vidtr_tiny",
        train=str(demo / "train.txt"),
        val=str(demo / "val.txt"),
        root=str(demo),
        labels=str(demo / "classes.txt"),
        rate=2,
        batch_size=4,
        epochs=2,
        workers=2,
        jit_compile=JIT,
    )
    with pytest.raises(KeyboardInterrupt):
        training.train(config, callbacks=[Kill()], verbose=0)
    assert json.loads((output / "checkpoint.json").read_text())["epoch"] == 1
    # resumed with worker processes instead of threads (--loader may change on resume): the same data
    assert (
        vidtr("train", "--output", output, "--resume", "--loader", "processes", "--verbose", "0", "--jit-compile", JIT)
        == 0
    )
    assert "resumed from epoch_001 (epoch 1 of 2)" in capsys.readouterr().out.replace("\n", "")
    for got, want in zip(weights_of(output), weights_of(finished_run)):
        np.testing.assert_array_equal(got, want)
    without_time = lambda path: [{k: v for k, v in row.items() if k != "seconds"} for row in read_log(path)]
    assert without_time(output / "log.csv") == without_time(finished_run / "log.csv")  # losses, metrics, lr


def test_resume_refuses_what_would_not_continue_the_same_run(demo, finished_run, tmp_path, capsys):
    assert vidtr("train", "--output", finished_run, "--resume", "--batch-size", "2") == 2
    assert "--batch-size 2 (the run used 4)" in capsys.readouterr().out.replace("\n", "")
    assert vidtr("train", "--output", finished_run, "--resume") == 2
    assert "already finished its 2 epochs" in capsys.readouterr().out.replace("\n", "")
    assert vidtr(*train_args(demo, finished_run)) == 2
    assert "already holds a checkpoint (epoch 2); pass --resume" in capsys.readouterr().out.replace("\n", "")
    assert vidtr("train", "--output", tmp_path / "nothing", "--resume") == 2
    assert "no checkpoint in" in capsys.readouterr().out


@pytest.mark.parametrize(
    "line, words",
    [
        ("videos/moving_up_00.avi thirty 1", "num_frames 'thirty' is not an integer"),
        ("videos/moving_up_00.avi 30 7", "label 7 is outside the class list (0 .. 3)"),
        ("videos/nowhere.avi 30 1", "No video at"),
        ("videos/corrupt.avi 30 1", "Cannot decode video"),
    ],
)
def test_a_bad_training_list_stops_training_before_its_first_step(demo, tmp_path, capsys, line, words):
    listing = tmp_path / "train.txt"
    listing.write_text((demo / "train.txt").read_text() + line + "\n")
    args = train_args(demo, tmp_path / "run")
    args[args.index("--train") + 1] = listing
    assert vidtr(*args) == 2
    printed = capsys.readouterr().out.replace("\n", "")
    assert f"{listing}:9: " in printed and words in printed and "training list" in printed
    assert not (tmp_path / "run").exists()  # nothing was built, trained or written


def test_fine_tuning_from_converted_weights_replaces_the_classifier(demo, tmp_path, capsys):
    source = build_model("vidtr_tiny")  # 10 classes, as `vidtr convert` / `vidtr inflate` would write it
    source.save_weights(tmp_path / "converted.weights.h5")
    source.save(tmp_path / "source.keras")
    args = train_args(demo, tmp_path / "tuned")
    args[args.index("--epochs") + 1] = "1"
    assert vidtr(*args, "--weights", tmp_path / "converted.weights.h5", "--lr", "0") == 0
    assert "weights" in capsys.readouterr().out
    tuned = load_model(tmp_path / "tuned").model
    assert tuned.output_shape == (None, 4)
    for got, want in zip(tuned.backbone.weights, source.backbone.weights):  # lr 0: the backbone as loaded
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    loaded = load_model(tmp_path / "source.keras", num_classes=4)
    model, notes = loaded.model, loaded.notes
    assert model.output_shape == (None, 4) and "classifier replaced: 10 -> 4 classes" in notes[-1]
    for got, want in zip(model.backbone.weights, source.backbone.weights):
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    model = load_model(tmp_path / "tuned").model  # a run directory: its last checkpoint
    assert model.output_shape == (None, 4)


# --------------------------------------------------------------------------------------------------
# The recipe's pieces


def test_milestones_scale_with_the_number_of_epochs():
    assert training.scaled_milestones(50) == [25, 40]
    assert training.scaled_milestones(80) == [25, 40]
    assert training.scaled_milestones(10) == [5, 8]
    assert training.scaled_milestones(2) == [1, 2]
    assert training.scaled_milestones(1) == [1, 1]
    assert training.scaled_milestones(10, [3, 6]) == [3, 6]
    schedule = training.EpochStepDecay(0.01, [2, 4], steps_per_epoch=3)
    got = [float(to_numpy(schedule(step))) for step in range(15)]
    want = [0.01] * 6 + [0.001] * 6 + [0.0001] * 3
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert schedule.at_epoch(3) == pytest.approx(0.001)


def test_coupled_sgd_is_torch_sgd_with_l2_in_the_gradient():
    optimizer = training.CoupledSGD(
        training.EpochStepDecay(0.1, [1], steps_per_epoch=2), momentum=0.9, l2_weight_decay=0.01
    )
    variable = keras.Variable(np.array([1.0, -2.0], np.float32))
    w, buf = np.array([1.0, -2.0]), np.zeros(2)
    for step, grad in enumerate([[0.5, 0.1], [-0.3, 0.2], [0.1, 0.1]]):
        optimizer.apply([keras.ops.convert_to_tensor(np.array(grad, np.float32))], [variable])
        lr = 0.1 if step < 2 else 0.01
        buf = 0.9 * buf + (np.array(grad) + 0.01 * w)
        w = w - lr * buf
        np.testing.assert_allclose(to_numpy(variable), w, rtol=1e-5)
    config = optimizer.get_config()
    assert config["momentum"] == 0.9 and config["l2_weight_decay"] == 0.01


def test_train_with_remat_and_mixed_precision_builds_that_model(demo, tmp_path, capsys):
    output = tmp_path / "lean"
    args = train_args(demo, output, "--remat", "--mixed-precision")
    args[args.index("--epochs") + 1] = "1"
    # The compiled step on every backend: no other spec here runs bfloat16 operations, which eager JAX would
    # compile one by one for this test alone.
    args[args.index("--jit-compile") + 1] = "auto"
    assert vidtr(*args) == 0
    model = load_model(output).model
    assert model.backbone.remat is True
    assert model.backbone.layers_dtype_policy.name == "mixed_bfloat16"  # restored from the checkpoint
    assert model.backbone.get_layer("patch_embedding").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("head").dtype_policy.name == "float32"  # logits and loss stay float32
    row = read_log(output / "log.csv")[0]
    assert np.isfinite(float(row["loss"]))
    # a saved model keeps its own configuration: the flags cannot silently not apply
    assert vidtr("train", "--model", output, "--remat", *train_args(demo, tmp_path / "again")[3:]) == 2
    assert "apply only to a model built from a preset" in capsys.readouterr().out.replace("\n", "")


def test_train_flags_map_onto_train_config(demo, tmp_path):
    """Every `vidtr train` flag reaches `TrainConfig` (built from its dataclass fields), e.g. `--no-flip`
    for classes a mirror image changes (moving left / right)."""
    seen = {}

    def fake_train(config, **kwargs):
        seen["config"] = config
        return {"history": [], "epochs": 0, "output": config.output, "writer": True}

    args = train_args(demo, tmp_path / "flags", "--no-flip", "--remat", "--mixed-precision")
    with mock.patch("vidtr_keras.cli.train.train", fake_train):
        assert vidtr(*args) == 0
    config = seen["config"]
    assert config.flip is False and config.remat is True and config.mixed_precision is True
    assert (config.model, config.rate, config.batch_size, config.epochs) == ("vidtr_tiny", 2, 4, 2)
    with mock.patch("vidtr_keras.cli.train.train", fake_train):
        assert vidtr(*train_args(demo, tmp_path / "flags")) == 0
    assert seen["config"].flip is True  # the released augmentation by default
