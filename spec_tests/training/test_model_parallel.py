"""Model parallelism and multi-host training on JAX (`vidtr_keras.training.sharding`): a model-parallel
VidTr step on a 1x2 mesh of virtual CPU devices equals the unsharded step and shards the weights
Megatron-style (checked on the arrays' shardings); the mesh, batch, backend and multi-host errors; `vidtr
info --mesh` against a hand computation; and two CPU processes training as one JAX cluster through
`keras.distribution.initialize()`.

The virtual devices need XLA_FLAGS before JAX starts, so the sharded checks run in one child process
(one set of compilations for all of them).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import types

import keras
import numpy as np
import pytest

from vidtr_keras import cli, training
from vidtr_keras.complexity.memory import count_parameters, memory, sharded_parameters
from vidtr_keras.complexity.spec import model_spec
from vidtr_keras.models.loading import load_model
from vidtr_keras.training import sharding

from helpers import BACKEND, to_numpy

JAX_ONLY = "keras.distribution (ModelParallel, multi-host initialize) runs on the JAX backend only"


def vidtr(*argv):
    return cli.main([str(a) for a in argv])


def child_env(**extra):
    """The environment of a child JAX process: this one's, without multi-host variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in sharding.ENVIRONMENT}
    return dict(env, KERAS_BACKEND="jax", **extra)


def run_child(script, env, timeout=300):
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.split("RESULT", 1)[1])


# --------------------------------------------------------------------------------------------------
# A model-parallel step on two devices


MODEL_PARALLEL_STEP = textwrap.dedent(
    """
    import json
    import keras, numpy as np
    from vidtr_keras import build_model
    from vidtr_keras.training.sharding import model_parallel

    rng = np.random.default_rng(0)
    clips = rng.normal(size=(2, 4, 32, 32, 3)).astype("float32")
    labels = np.array([1, 7])

    def two_steps(model):
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        losses = [float(model.train_on_batch(clips, labels)) for _ in range(2)]
        return losses, [np.asarray(v.value) for v in model.weights]

    keras.utils.set_random_seed(0)
    reference = build_model("vidtr_tiny")
    start = reference.get_weights()
    want_losses, want = two_steps(reference)

    parallel = model_parallel("1x2", batch_size=2)
    with parallel.scope():
        keras.utils.set_random_seed(0)
        model = build_model("vidtr_tiny")
        model.set_weights(start)
        losses, got = two_steps(model)
        split = {v.path: [str(a) for a in v.value.sharding.spec] for v in model.weights
                 if any(a is not None for a in v.value.sharding.spec)}
        shard_shapes = {v.path: list(v.value.addressable_shards[0].data.shape) for v in model.weights}
        slots = [v for v in model.optimizer.variables if "in_proj_kernel" in v.path]
        slot_specs = [[str(a) for a in v.value.sharding.spec] for v in slots]
        conv = build_model("cvidtr_tiny", pooling="conv", frames_dropped=(4, 2))
        conv_split = {v.path: [str(a) for a in v.value.sharding.spec] for v in conv.weights if "pooling" in v.path}
        try:
            build_model("vidtr_tiny", mlp_dim=65)
            indivisible = None
        except ValueError as err:
            indivisible = str(err)
    print("RESULT", json.dumps({
        "losses": [want_losses, losses],
        "max_difference": max(float(np.max(np.abs(a - b))) for a, b in zip(want, got)),
        "split": split, "shard_shapes": shard_shapes, "sizes": {v.path: int(np.prod(v.shape)) for v in model.weights},
        "slot_specs": slot_specs, "conv_split": conv_split, "indivisible": indivisible,
    }))
    """
)


@pytest.fixture(scope="module")
def two_device_step():
    if BACKEND != "jax":
        pytest.skip(JAX_ONLY)
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    return run_child(MODEL_PARALLEL_STEP, child_env(XLA_FLAGS=flags))


def test_a_model_parallel_step_on_a_1x2_mesh_equals_the_unsharded_step(two_device_step):
    want, got = two_device_step["losses"]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert two_device_step["max_difference"] < 1e-5  # every weight after two SGD-momentum steps


def test_the_encoder_weights_are_split_megatron_style_over_the_model_axis(two_device_step):
    split, shapes = dict(two_device_step["split"]), two_device_step["shard_shapes"]
    for block in range(3):  # vidtr_tiny: 3 blocks, width 32, MLP 64
        prefix = f"encoder_block_{block}/"
        assert split.pop(prefix + "attention/in_proj_kernel") == ["None", "model"]  # columns: q | k | v
        assert split.pop(prefix + "attention/in_proj_bias") == ["model"]
        assert split.pop(prefix + "attention/out_proj_kernel") == ["model", "None"]  # rows
        assert split.pop(prefix + "mlp_dense1/kernel") == ["None", "model"]
        assert split.pop(prefix + "mlp_dense1/bias") == ["model"]
        assert split.pop(prefix + "mlp_dense2/kernel") == ["model", "None"]
        assert shapes[prefix + "attention/in_proj_kernel"] == [32, 48]  # half of each weight per device
        assert shapes[prefix + "mlp_dense2/kernel"] == [32, 32]
        assert shapes[prefix + "attention/out_proj_bias"] == [32]  # replicated
    assert split == {}  # embedding, class tokens, norms, head: replicated
    assert two_device_step["slot_specs"] and all(s == ["None", "model"] for s in two_device_step["slot_specs"])
    assert two_device_step["conv_split"]["encoder_block_0/pooling/conv/kernel"] == ["None", "None", "None", "model"]


def test_the_memory_model_counts_the_parameters_the_layout_splits(two_device_step):
    sizes = two_device_step["sizes"]  # of every weight; "split": those with a "model" axis in their sharding
    assert sum(sizes[path] for path in two_device_step["split"]) == sharded_parameters(model_spec("vidtr_tiny"))[0]


def test_a_weight_that_does_not_split_over_the_model_axis_is_named(two_device_step):
    message = two_device_step["indivisible"]
    assert message is not None and "`mesh` 1x2" in message and "mlp_dense1/kernel" in message and "65" in message


# --------------------------------------------------------------------------------------------------
# Errors (in process: no device is touched)


@pytest.mark.parametrize("text", ["2", "2x", "0x2", "ax2", "2x2x2", ""])
def test_a_bad_mesh_text_is_refused_naming_mesh(text):
    with pytest.raises(ValueError, match="`mesh` must be DATAxMODEL"):
        sharding.parse_mesh(text)
    assert sharding.mesh_from_text(" 2X4 ") == "2x4"


def model_parallel_args(tmp_path, *extra):
    return ["train", "--model", "vidtr_tiny", "--train", tmp_path / "none.txt", "--output", tmp_path / "out"] + [*extra]


def test_a_mesh_that_does_not_match_the_devices_is_refused(tmp_path, capsys):
    if BACKEND != "jax":
        pytest.skip(JAX_ONLY)
    devices = len(keras.distribution.list_devices())
    args = model_parallel_args(tmp_path, "--distribute", "model-parallel", "--mesh", f"1x{devices + 1}")
    assert vidtr(*args, "--batch-size", "2") == 2
    out = capsys.readouterr().out.replace("\n", "")
    assert f"1x{devices + 1} needs {devices + 1} devices, but there are {devices}" in out
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):  # argparse: a bad mesh text
        vidtr(*model_parallel_args(tmp_path, "--mesh", "2by2"))
    assert "must be DATAxMODEL" in capsys.readouterr().err


def test_a_batch_that_does_not_split_over_the_data_axis_is_refused():
    if BACKEND != "jax":
        pytest.skip(JAX_ONLY)
    with pytest.raises(ValueError, match="`batch_size` 3 does not split evenly over the 2 devices of the data axis"):
        sharding.model_parallel("2x1", batch_size=3, devices=["cpu:0", "cpu:1"])


def test_a_weight_dimension_that_does_not_split_is_named_before_jax_stops():
    if BACKEND != "jax":
        pytest.skip(JAX_ONLY)
    parallel = sharding.model_parallel("1x3", devices=["cpu:0", "cpu:1", "cpu:2"])  # no device is used
    weight = types.SimpleNamespace(path="encoder_block_0/mlp_dense1/kernel", shape=(32, 64), _layout=None)
    with pytest.raises(ValueError, match=r"`mesh` 1x3: weight 'encoder_block_0/mlp_dense1/kernel' of shape \(32, 64\)"):
        parallel.get_variable_layout(weight)
    norm = types.SimpleNamespace(path="encoder_block_0/norm1/gamma", shape=(32,), _layout=None)
    assert parallel.get_variable_layout(norm).axes == (None,)  # not in the layout: replicated


def test_model_parallel_needs_jax_and_says_so(tmp_path, capsys):
    if BACKEND == "jax":
        pytest.skip("model-parallel runs on JAX (tested above)")
    with pytest.raises(ValueError, match="needs the JAX backend"):
        sharding.model_parallel("1x1")
    assert vidtr(*model_parallel_args(tmp_path, "--distribute", "model-parallel")) == 2
    assert "needs the JAX backend" in capsys.readouterr().out.replace("\n", "")
    with pytest.raises(ValueError, match="needs the JAX backend"):
        sharding.initialize_multi_host({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"})


def test_incomplete_multi_host_variables_are_named():
    if BACKEND != "jax":
        pytest.skip(JAX_ONLY)
    assert sharding.initialize_multi_host({}) == (0, 1)  # nothing set: one process
    with pytest.raises(ValueError, match="KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_PROCESS_ID not set"):
        sharding.initialize_multi_host({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"})
    bad = dict.fromkeys(sharding.ENVIRONMENT, "2")  # process id 2 of 2
    with pytest.raises(ValueError, match="must be a number below KERAS_DISTRIBUTION_NUM_PROCESSES"):
        sharding.initialize_multi_host(bad)


def test_model_parallel_over_several_processes_is_refused_with_the_reason(monkeypatch):
    if BACKEND != "jax":
        pytest.skip(JAX_ONLY)
    monkeypatch.setattr(sharding, "_joined", [(0, 2)])  # as after joining a cluster of two processes
    assert sharding.process() == (0, 2)
    with pytest.raises(ValueError, match="model-parallel runs in one process .* across hosts, train data-parallel"):
        sharding.model_parallel("1x2", devices=["cpu:0", "cpu:1"])


# --------------------------------------------------------------------------------------------------
# vidtr info --mesh: the memory of one device


def test_the_per_device_memory_is_the_analytic_model_divided_by_the_shards(capsys):
    whole = memory("vidtr_tiny", batch_size=2, optimizer_slots=1)  # one device's batch on a 2x2 mesh
    device = memory("vidtr_tiny", batch_size=4, optimizer_slots=1, mesh="2x2")
    # By hand: vidtr_tiny has 3 blocks of width d 32 and MLP m 64; the split weights of a block are
    # q/k/v (3 d^2 + 3 d), the output projection (d^2), the first MLP (d m + m) and the second (m d).
    d, m = 32, 64
    split = 3 * (3 * d * d + 3 * d + d * d + d * m + m + m * d)
    assert device.parameters == count_parameters("vidtr_tiny") - split + split // 2
    assert device.state_bytes == device.parameters * 4 * 3  # weights, gradients, momentum
    halved = {"qkv", "attention_maps", "attention_output", "mlp_hidden"}
    expected = sum(-(-r.bytes // 2) if r.component in halved else r.bytes for r in whole.rows)
    assert device.activation_bytes == expected < whole.activation_bytes
    assert device.mesh == (2, 2) and device.batch_size == 4

    assert vidtr("info", "vidtr_tiny", "--batch", "4", "--mesh", "2x2") == 0
    out = capsys.readouterr().out
    assert "per device on a 2x2 mesh" in out and f"{device.parameters:,} parameters" in out
    with pytest.raises(ValueError, match="`batch_size` 3 does not split evenly over `mesh`'s 2"):
        memory("vidtr_tiny", batch_size=3, mesh="2x1")
    with pytest.raises(ValueError, match="`mesh` 1x3: the model's width 32 does not split over 3 devices"):
        memory("vidtr_tiny", mesh=(1, 3))


# --------------------------------------------------------------------------------------------------
# Multi-host: two CPU processes as one JAX cluster (docs/distributed.md's example)


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_as_one_jax_cluster_like_one_device(tmp_path):
    if BACKEND != "jax":
        pytest.skip(JAX_ONLY)
    demo = tmp_path / "demo"
    assert vidtr("make-demo-data", demo, "--classes", "2", "--videos-per-class", "2", "--val-per-class", "0") == 0
    settings = dict(model="vidtr_tiny", train=f"{demo}/train.txt", root=str(demo), labels=f"{demo}/classes.txt", rate=2)
    settings.update(batch_size=4, epochs=1)
    argv = [sys.executable, "-m", "vidtr_keras.cli", "train", "--verbose", "0", "--distribute", "data-parallel"]
    argv += ["--output", tmp_path / "cluster"]
    for key, value in settings.items():  # the same settings as flags
        argv += ["--" + key.replace("_", "-"), value]
    cluster = dict(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"localhost:{free_port()}", KERAS_DISTRIBUTION_NUM_PROCESSES="2")
    procs = [  # the two processes of the cluster, each with one CPU device
        subprocess.Popen(
            [str(a) for a in argv],
            env=child_env(**cluster, KERAS_DISTRIBUTION_PROCESS_ID=str(rank)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        one = training.train(training.TrainConfig(output=str(tmp_path / "one"), **settings), verbose=0)  # meanwhile
        outputs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            p.kill()  # no-op once finished
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, out[-2000:] + err[-2000:]
    assert "data-parallel over 2 devices" in outputs[0][0].replace("\n", " ")
    assert "training" not in outputs[1][0]  # process 1 trains in step and writes nothing
    log = (tmp_path / "cluster" / "log.csv").read_text().splitlines()
    assert len(log) == 2  # a header and one epoch, written once
    loss = float(dict(zip(log[0].split(","), log[1].split(",")))["loss"])
    np.testing.assert_allclose(loss, one["history"][0]["loss"], rtol=1e-5)
    for got, want in zip(load_model(tmp_path / "cluster").model.weights, one["model"].weights):
        np.testing.assert_allclose(to_numpy(got), to_numpy(want), atol=1e-5)
