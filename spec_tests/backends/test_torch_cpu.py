"""What keeps eager PyTorch training of a small model fast, asserted as behaviour (never wall-clock):

- `vidtr train` runs a small model (the tiny presets) on one PyTorch intra-op thread (`threads="auto"`)
  and gives the process its thread count back afterwards. Eager PyTorch runs about 4,000 ops per training
  step of vidtr_tiny; with one thread per core every OpenMP parallel region waits at a barrier for a
  thread the scheduler may not run for a whole time slice when another process holds a core (on a shared
  2-core machine a step was then many times slower than on one thread). Big models (VidTr-S) keep
  torch's default. The policy: `vidtr_keras.backends.torch_cpu`.
- The training loop (schedule, optimiser, checkpoint callback, metrics) does not call `.item()` /
  `float()` on a tensor at every step (a host sync that stalls an accelerator's queue).
"""

import keras
import pytest

from vidtr_keras import cli, training
from vidtr_keras.backends.torch_cpu import SMALL_MODEL_MACS, intra_op_threads

from helpers import BACKEND

JIT = "off" if BACKEND == "jax" else "auto"


def config_for(demo, output, **kwargs):
    return training.TrainConfig(
        output=str(output),
        model="vidtr_tiny",
        train=str(demo / "train.txt"),
        val=str(demo / "val.txt"),
        root=str(demo),
        labels=str(demo / "classes.txt"),
        rate=2,
        batch_size=2,
        epochs=1,
        jit_compile=JIT,
        **kwargs,
    )


def test_auto_threads_pick_one_thread_for_small_models_on_torch_only():
    small, big = 5.7e6, 1.6e11  # vidtr_tiny's walk-through batch; one VidTr-S 8x224x224 clip
    assert intra_op_threads("auto", small, backend="torch") == 1
    assert intra_op_threads("auto", SMALL_MODEL_MACS - 1, backend="torch") == 1
    assert intra_op_threads("auto", SMALL_MODEL_MACS, backend="torch") is None
    assert intra_op_threads("auto", big, backend="torch") is None
    assert intra_op_threads("auto", None, backend="torch") is None  # not a VidTr model: no count, no change
    for backend in ("tensorflow", "jax"):
        assert intra_op_threads("auto", small, backend=backend) is None
    assert intra_op_threads(None, small, backend="torch") is None
    assert intra_op_threads(3, big, backend="torch") == 3
    assert intra_op_threads("2", small, backend="torch") == 2


@pytest.mark.parametrize("value", [0, -1, "many", 1.5, True])
def test_bad_thread_counts_are_refused_with_the_value(value):
    with pytest.raises(ValueError, match="`threads` must be 'auto', None or a positive integer"):
        intra_op_threads(value, 1e6, backend="torch")


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_an_explicit_thread_count_outside_torch_says_where_to_set_it(backend):
    with pytest.raises(ValueError, match="applies to the PyTorch backend"):
        intra_op_threads(2, 1e6, backend=backend)


def test_the_threads_flag_reaches_train_config(demo, tmp_path):
    seen = []

    def fake_train(config, **kwargs):
        seen.append(config.threads)
        return {"history": [], "epochs": 0, "output": config.output, "writer": True}

    base = ["train", "--model", "vidtr_tiny", "--train", str(demo / "train.txt"), "--output", str(tmp_path / "r")]
    from unittest import mock

    with mock.patch("vidtr_keras.cli.train.train", fake_train):
        for extra in ([], ["--threads", "3"], ["--threads", "default"]):
            assert cli.main(base + extra) == 0
        with pytest.raises(SystemExit):
            cli.main(base + ["--threads", "0"])
    assert seen == ["auto", 3, None]


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's intra-op thread pool; TF and JAX keep theirs")
def test_a_small_model_trains_on_one_torch_thread_and_the_count_is_restored(demo, tmp_path):
    import torch

    before = torch.get_num_threads()
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(torch.get_num_threads())

    result = training.train(config_for(demo, tmp_path / "auto"), callbacks=[Record()], verbose=0)
    assert result["threads"] == 1
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before
    # threads=None keeps torch's own setting during the run
    seen.clear()
    result = training.train(config_for(demo, tmp_path / "default", threads=None), callbacks=[Record()], verbose=0)
    assert result["threads"] is None and set(seen) == {before}


@pytest.mark.skipif(BACKEND != "torch", reason="counts PyTorch's host syncs (aten::item) with torch.profiler")
def test_the_training_loop_does_not_sync_the_host_at_every_step(demo, tmp_path):
    """No `.item()` / `float(tensor)` between the first and the last step of an epoch: the lr schedule,
    the optimiser, the metrics and the checkpoint callback keep their values as tensors."""
    from torch.profiler import ProfilerActivity, profile

    class Profile(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.prof = profile(activities=[ProfilerActivity.CPU])
                self.prof.__enter__()
            self.steps += 1

        def on_train_batch_end(self, batch, logs=None):
            if batch == self.params["steps"] - 1:
                self.prof.__exit__(None, None, None)

    recorder = Profile()
    # 8 training videos at batch 2: 4 steps, profiled from the first step's start to the last one's end
    training.train(config_for(demo, tmp_path / "sync"), callbacks=[recorder], verbose=0)
    assert recorder.steps == 4
    events = {e.key: e.count for e in recorder.prof.key_averages()}
    assert events.get("aten::mm", 0) > 0  # the profile saw the training steps
    syncs = {k: v for k, v in events.items() if k in ("aten::item", "aten::_local_scalar_dense")}
    assert syncs == {}, f"host syncs during the epoch's steps: {syncs}"
