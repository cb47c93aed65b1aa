"""`vidtr train --distribute data-parallel` on the backend under test, on two devices of this CPU machine
(JAX: two virtual XLA devices; TensorFlow: two logical CPU devices under `MirroredStrategy`; PyTorch: two
gloo processes started by torchrun): the run ends with the weights and the logged losses of the
single-device run, after a `kill -9` of a worker in its second epoch and `--resume`. Every rank reads its
rows of the same batches (`RankShard`); a batch that does not split over the devices, an unknown value and
PyTorch data-parallel started without torchrun are refused with a clear error.
"""

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vidtr_keras import cli, training
from vidtr_keras import data as vdata
from vidtr_keras.backends.distributed import RankShard
from vidtr_keras.models.loading import load_model
from vidtr_keras.training.distribute import distribution_for

from helpers import BACKEND, to_numpy

# The child processes see two devices: virtual XLA CPU devices (JAX), logical CPU devices configured before
# TensorFlow starts, or two torchrun processes (PyTorch, one device each).
PRELUDE = {
    "jax": "",
    "tensorflow": textwrap.dedent(
        """
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        """
    ),
    "torch": "",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """4 classes x 3 videos (2 train + 1 val each); `val5.txt`: 5 validation videos, so the last validation
    batch of 4 is partial and falls unevenly on two ranks."""
    root = tmp_path_factory.mktemp("demo")
    argv = ["make-demo-data", str(root), "--videos-per-class", "3", "--val-per-class", "1", "--frames", "20", "32"]
    assert cli.main(argv) == 0
    lines = (root / "val.txt").read_text().splitlines() + (root / "train.txt").read_text().splitlines()[:1]
    (root / "val5.txt").write_text("\n".join(lines) + "\n")
    return root


def train_argv(demo, output, *extra):
    # Validation on PyTorch only, where the metrics of the ranks' shares are ours to combine (JAX and TensorFlow
    # evaluate inside Keras' own distributed step; each evaluation is one more compilation there).
    validation = ["--val", demo / "val5.txt"] if BACKEND == "torch" else []
    # JAX runs one SPMD program over the devices, so even dropout draws the bits of the single-device run; on
    # TensorFlow and PyTorch each replica draws masks for its own clips, so the weights are the single-device
    # run's only without dropout.
    dropout = ["--dropout", "0"] if BACKEND != "jax" else []
    return [
        "train",
        "--model",
        "vidtr_tiny",
        *dropout,
        "--train",
        demo / "train.txt",
        *validation,
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
        "--verbose",
        "0",
        *extra,
    ]


def read_log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def weights_of(run):
    return [to_numpy(v) for v in load_model(run).model.weights]


def launch(script, tmp_path, name):
    """Runs `script` on two devices of the backend under test (module docstring)."""
    path = tmp_path / f"{name}.py"
    path.write_text(PRELUDE[BACKEND] + textwrap.dedent(script))
    return _run([str(path)], tmp_path)


def launch_cli(argv, tmp_path):
    """`vidtr ARGV` on two devices, launched as docs/distributed.md says (TensorFlow: after the prelude)."""
    if BACKEND == "tensorflow":
        return launch(f"import sys\nfrom vidtr_keras import cli\nsys.exit(cli.main({argv!r}))\n", tmp_path, "cli")
    return _run(["-m", "vidtr_keras.cli", *argv], tmp_path)


def _run(program, tmp_path):
    # Unbuffered: the specs read what a process printed before it was killed with SIGKILL.
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONUNBUFFERED="1")
    if BACKEND == "jax":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
        # A resumed process runs the programs the killed one compiled: JAX's persistent compilation cache
        # (one folder per test, every program however quick to compile) lets it load them instead.
        env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "jax_cache")
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] if BACKEND == "torch" else []
    command = [sys.executable, *launcher, *program]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_data_parallel_run_killed_and_resumed_ends_with_the_single_device_weights(demo, tmp_path):
    one = tmp_path / "one_device"
    assert cli.main([str(a) for a in train_argv(demo, one, "--quiet")]) == 0
    many = tmp_path / "data_parallel"
    argv = [str(a) for a in train_argv(demo, many, "--distribute", "data-parallel")]

    # Both epochs of the same run on two devices; a worker (rank 1 of two torchrun processes, the one
    # process on JAX and TensorFlow) is killed with SIGKILL after its first step of the second epoch.
    killed = launch(
        f"""
        import os, signal, keras
        from vidtr_keras import cli, training
        from vidtr_keras.cli.args import dataclass_from_args
        from vidtr_keras.training.distribute import distribution_for

        try:  # a batch that does not split over the two devices
            distribution_for(training.TrainConfig(output="unused", batch_size=3, distribute="data-parallel"))
        except ValueError as err:
            print("BATCH-ERROR", err)
        if keras.backend.backend() == "jax":  # a last validation batch that does not split (5 videos)
            from vidtr_keras import data
            records = data.read_annotations({str(demo / "val5.txt")!r}).records
            val5 = data.VideoClipDataset(records, {str(demo)!r}, clip_len=4, rate=2, crop_size=32, batch_size=4,
                                         training=False)
            config = training.TrainConfig(output="unused", batch_size=4, distribute="data-parallel")
            try:
                distribution_for(config).shard(val5)
            except ValueError as err:
                print("VALIDATION-ERROR", err)

        class KillWorker(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if self.epoch == 1 and os.environ.get("RANK", "1") == "1":
                    os.kill(os.getpid(), signal.SIGKILL)

        config = dataclass_from_args(training.TrainConfig, cli.build_parser().parse_args({argv!r}))
        training.train(config, callbacks=[KillWorker()], verbose=0)
        """,
        tmp_path,
        "killed",
    )
    assert killed.returncode != 0, killed.stdout[-2000:] + killed.stderr[-3000:]
    assert "does not split evenly over 2" in killed.stdout, killed.stdout[-2000:] + killed.stderr[-3000:]
    if BACKEND == "jax":
        assert "validation list has 5 videos, which do not split evenly over the 2 devices" in killed.stdout
    pointer = json.loads((many / "checkpoint.json").read_text())
    assert pointer["epoch"] == 1 and pointer["config"]["distribute"] == "data-parallel"

    resumed = launch_cli([*argv, "--resume"], tmp_path)
    printed = resumed.stdout.replace("\n", "")
    assert resumed.returncode == 0, printed[-2000:] + resumed.stderr[-3000:]
    assert "data-parallel over 2" in printed and "resumed from epoch_001" in printed
    assert printed.count("done: 2 epochs") == 1  # one process reports

    want, got = read_log(one / "log.csv"), read_log(many / "log.csv")
    assert [row["epoch"] for row in got] == ["1", "2"]
    keys = ["loss", "accuracy"] + (["val_loss", "val_accuracy"] if BACKEND == "torch" else [])
    for key in keys:  # the global batch's, the whole validation set's
        np.testing.assert_allclose([float(r[key]) for r in got], [float(r[key]) for r in want], rtol=1e-5, atol=1e-6)
    for a, b in zip(weights_of(many), weights_of(one), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_the_ranks_read_their_rows_of_the_same_batches(demo):
    records = vdata.read_annotations(demo / "val5.txt").records
    common = dict(root=demo, clip_len=4, rate=2, crop_size=32, batch_size=4, seed=3)
    full = vdata.VideoClipDataset(records, training=True, drop_remainder=False, **common)
    full.set_epoch(1)
    shards = [
        RankShard(vdata.VideoClipDataset(records, training=True, drop_remainder=False, **common), r, 3)
        for r in range(3)
    ]
    for shard in shards:
        shard.set_epoch(1)
    # batch 0: 4 clips as 2 + 1 + 1; batch 1: the fifth clip, on rank 0 only
    assert [len(s) for s in shards] == [2, 1, 1]
    for batch in range(len(full)):
        clips, labels = full[batch]
        parts = [s[batch] for s in shards if batch < len(s)]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), clips)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), labels)


def test_an_unknown_distribute_value_is_refused(tmp_path):
    with pytest.raises(ValueError, match="`distribute` must be one of none, data-parallel"):
        distribution_for(training.TrainConfig(output=str(tmp_path), distribute="pipeline"))


def test_pytorch_data_parallel_without_torchrun_says_how_to_launch(demo, tmp_path, capsys, monkeypatch):
    if BACKEND != "torch":
        pytest.skip("the launcher check is PyTorch's: JAX and TensorFlow use the devices of one process")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    argv = train_argv(demo, tmp_path / "dp", "--distribute", "data-parallel")
    assert cli.main([str(a) for a in argv]) == 2
    assert "torchrun --nproc-per-node 2 -m vidtr_keras.cli train" in capsys.readouterr().out.replace("\n", "")
    assert not (tmp_path / "dp").exists()
    # a batch that does not split over the processes is refused before any process group starts
    config = training.TrainConfig(output=str(tmp_path), batch_size=3, distribute="data-parallel")
    with pytest.raises(ValueError, match="`batch_size` 3 does not split evenly over 2 torchrun processes"):
        distribution_for(config, environ={"RANK": "0", "WORLD_SIZE": "2"})


def test_tensorflow_data_parallel_over_several_workers_is_refused(tmp_path):
    if BACKEND != "tensorflow":
        pytest.skip("TF_CONFIG concerns TensorFlow's strategies only")
    cluster = {"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 0}}
    config = training.TrainConfig(output=str(tmp_path), distribute="data-parallel")
    with pytest.raises(ValueError, match="keras-team/keras#20585"):
        distribution_for(config, environ={"TF_CONFIG": json.dumps(cluster)})
