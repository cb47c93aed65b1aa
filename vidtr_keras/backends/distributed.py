"""The framework side of data-parallel training on TensorFlow and PyTorch (`vidtr_keras.training.distribute`
chooses and drives it; JAX needs nothing here: `keras.distribution.DataParallel` is Keras' own).

- TensorFlow: `keras.distribution` is not implemented for TensorFlow; Keras 3's TensorFlow trainer runs
  `fit` under a `tf.distribute` strategy instead when the model is built and compiled inside its scope
  (keras-io guide "Multi-GPU distributed training with TensorFlow"): `tf_strategy` is `MirroredStrategy`
  over this machine's GPUs (or its logical CPUs). `MultiWorkerMirroredStrategy` (several machines,
  `TF_CONFIG`) fails in Keras 3's `fit` before the first step (keras-team/keras#20585: its symbolic build
  reduces a distributed batch eagerly), so `tf_workers` only detects it, to refuse it clearly.
- PyTorch: Keras 3.15's torch trainer has no distribution path (Keras master wraps the model in
  `DistributedDataParallel` in its own `train_step`; no release has it yet). `TorchDataParallel` does what
  DDP does for `fit` without touching Keras' trainer: one process per device started by `torchrun`, the
  weights broadcast from rank 0, and every gradient averaged over the ranks by an all-reduce in a hook
  that torch runs when the gradient has been accumulated in `loss.backward()`, so Keras' optimizer
  step sees the gradient of the global batch (the mean of the ranks' shard means). `RankShard` gives each
  rank its rows of every batch; `MetricAverage` makes the logged metrics those of the global batch.

The frameworks are imported inside the functions, on the backend that uses them.
"""

import json
import os

import keras
import numpy as np

# --- TensorFlow ------------------------------------------------------------------------------------------


def tf_workers(environ=None):
    """The number of workers `TF_CONFIG` names (1 without it)."""
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    if not text:
        return 1
    cluster = json.loads(text).get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def tf_strategy():
    """`MirroredStrategy` over the GPUs, or over the logical CPU devices when there is no GPU (one device:
    one replica)."""
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])


# --- PyTorch ---------------------------------------------------------------------------------------------


def torchrun_world(environ=None):
    """(rank, world size) from the variables `torchrun` sets; None when they are not set."""
    environ = os.environ if environ is None else environ
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    return int(environ["RANK"]), int(environ["WORLD_SIZE"])


class TorchDataParallel:
    """One `torchrun` rank of a data-parallel run: the process group, the weights broadcast from rank 0,
    the gradient all-reduce (module docstring), and the all-reduces of `MetricAverage`.

    The process group uses NCCL on CUDA (each rank on the GPU `LOCAL_RANK`) and gloo on the CPU.
    """

    def __init__(self, environ=None):
        import torch
        import torch.distributed as dist

        environ = os.environ if environ is None else environ
        self.rank, self.world_size = torchrun_world(environ)
        self.local_rank = int(environ.get("LOCAL_RANK", 0))
        self._hooks = []
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)  # Keras' torch backend uses the current CUDA device
            backend, self.device = "nccl", torch.device("cuda", self.local_rank)
        else:
            backend, self.device = "gloo", torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=self.rank, world_size=self.world_size)

    def broadcast_weights(self, model):
        """Rank 0's weights (and random generators' states) on every rank: the ranks start from one model
        (the optimizer's state starts at zero, or from the same checkpoint when resuming)."""
        import torch
        import torch.distributed as dist

        with torch.no_grad():
            for variable in model.variables:
                dist.broadcast(variable.value.data, src=0)

    def average_gradients(self, model):
        """Averages every trainable weight's gradient over the ranks as soon as `backward` has
        accumulated it (torch's post-accumulate-grad hook, the point where DDP's reducer reduces)."""
        import torch.distributed as dist

        world = self.world_size

        def hook(parameter):
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad.div_(world)

        self.remove_hooks()
        for variable in model.trainable_variables:
            self._hooks.append(variable.value.register_post_accumulate_grad_hook(hook))

    def remove_hooks(self):
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def mean(self, values):
        """The mean over the ranks of a float vector (the same length on every rank)."""
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(np.asarray(values, np.float64), device=self.device)  # NCCL reduces GPU tensors only
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return (tensor / self.world_size).cpu().tolist()

    def summed_metric_results(self, model):
        """The model's metric results computed from their states summed over the ranks (every Keras
        metric here is a sum of per-sample statistics and a count), as Keras master's torch trainer
        reduces them."""
        import torch
        import torch.distributed as dist

        summed = []
        with torch.no_grad():
            for variable in model.metrics_variables:
                value = variable.value.detach().clone()
                dist.all_reduce(value, op=dist.ReduceOp.SUM)
                summed.append(value)
        with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, summed))):
            results = model.get_metrics_result()
        return {k: float(keras.ops.convert_to_numpy(v)) for k, v in results.items()}

    def seed_rank(self, seed, epoch):
        """Seeds torch's generator, which draws dropout, from (seed, epoch, rank) on ranks > 0: without
        it every rank would draw the same masks for its own clips; rank 0 keeps the single-device
        seeding (`torch_cpu.seed_for_epoch`)."""
        import torch

        if self.rank:
            entropy = [int(seed) % 2**63, 3, int(epoch), self.rank]
            torch.manual_seed(int(np.random.default_rng(entropy).integers(2**62)))

    def close(self):
        import torch.distributed as dist

        self.remove_hooks()
        if dist.is_initialized():
            dist.destroy_process_group()


class RankShard(keras.utils.PyDataset):
    """Rank `rank`'s rows of every batch of `dataset`: the contiguous `np.array_split` part of each batch,
    so the ranks' parts together are the single-device batch, in its order and with its augmentation.

    `dataset` is a `VideoClipDataset`, whose clips this rank alone decodes, or a dataset wrapping one as
    `.dataset` (mixed batches: every clip of a batch depends on the whole batch), read whole and sliced.
    Batches in which this rank has no row (a last partial batch smaller than the world) are left out.
    `set_epoch`, `training`, `failures` and `workers` are those of `dataset`.
    """

    def __init__(self, dataset, rank, world_size):
        super().__init__(
            workers=dataset.workers,
            use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset = dataset
        self.clips = getattr(dataset, "dataset", dataset)  # the VideoClipDataset
        self.rank = int(rank)
        self.world_size = int(world_size)
        size, total = self.clips.batch_size, len(self.clips.records)
        self._batches = [b for b in range(len(dataset)) if self._rows(min(size, total - b * size))[1] > 0]

    def _rows(self, n):
        """(start, count) of this rank's rows in a batch of n."""
        sizes = [len(part) for part in np.array_split(np.arange(n), self.world_size)]
        return sum(sizes[: self.rank]), sizes[self.rank]

    @property
    def training(self):
        return self.dataset.training

    @property
    def failures(self):
        return self.dataset.failures

    def set_epoch(self, epoch):
        self.dataset.set_epoch(epoch)

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        batch = self._batches[index]
        if self.dataset is self.clips:
            data = self.clips
            epoch = data.epoch  # read once: every clip of this batch comes from the same epoch
            order = data.order(epoch)[batch * data.batch_size : (batch + 1) * data.batch_size]
            start, count = self._rows(len(order))
            items = [data.get_item(int(i), epoch) for i in order[start : start + count]]
            return np.stack([clip for clip, _ in items]), np.stack([target for _, target in items])
        clips, targets = self.dataset[batch]
        start, count = self._rows(len(clips))
        return clips[start : start + count], targets[start : start + count]

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


class MetricAverage(keras.callbacks.Callback):
    """The epoch's logs of the whole data on every rank: the training metrics as the mean of the ranks'
    means (exact: every rank sees the same number of clips in every step), the validation metrics from
    the metric states summed over the ranks at the end of the evaluation (the ranks' shares of a last
    partial batch differ). Place it before the callbacks that read the epoch's logs: Keras hands the same
    `logs` dict to every callback's `on_epoch_end`."""

    def __init__(self, group):
        super().__init__()
        self.group = group
        self._validation = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._validation = {}

    def on_test_end(self, logs=None):
        # Keras copies the logs it passes here, so the results are kept for `on_epoch_end`.
        self._validation = self.group.summed_metric_results(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        keys = sorted(k for k, v in logs.items() if not k.startswith("val_") and isinstance(v, (int, float)))
        logs.update(zip(keys, self.group.mean([logs[k] for k in keys])))
        logs.update({f"val_{k}": v for k, v in self._validation.items() if f"val_{k}" in logs})


class RankSeed(keras.callbacks.Callback):
    """Reseeds dropout per rank at the start of every epoch (`TorchDataParallel.seed_rank`); place it after
    the callback that seeds the epoch (`EpochCheckpoint`)."""

    def __init__(self, group, seed):
        super().__init__()
        self.group = group
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        self.group.seed_rank(self.seed, epoch)
