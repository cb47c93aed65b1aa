"""How `train` spreads a run over devices: `distribution_for(config)` returns the `Distribution` of
`config.distribute`, the one place that chooses it (docs/distributed.md).

`data-parallel` splits every batch over the devices (or processes), averages the gradients and keeps the
data order and augmentation of the single-device run, through each backend's own engine:

- JAX: `keras.distribution.DataParallel` over `keras.distribution.list_devices()` (one process; the batch
  is sharded over the devices by Keras, the computation is one SPMD program, so even dropout draws the
  bits of the single-device run);
- TensorFlow: `tf.distribute.MirroredStrategy` over the devices of one machine, the model built, compiled
  and fitted inside its scope; Keras splits each global batch over the replicas and sums the replicas'
  gradients of the loss scaled by 1 / replicas (several machines, `MultiWorkerMirroredStrategy`, fail in
  Keras 3's `fit`: refused, `backends.distributed`);
- PyTorch: one process per device started by `torchrun`, each reading its rows of the same batches,
  the gradients averaged over the processes (`vidtr_keras.backends.distributed`).

One process writes the checkpoints and the log (`Distribution.is_writer`); the others train in step.
"""

import contextlib

import keras

from vidtr_keras.backends import distributed
from vidtr_keras.training.sharding import data_share, model_parallel, process

CHOICES = ("none", "data-parallel", "model-parallel")
TORCHRUN_EXAMPLE = "torchrun --nproc-per-node 2 -m vidtr_keras.cli train --distribute data-parallel ..."


class Distribution:
    """One device (`distribute` none); the base of the others.

    Attributes:
        name: the `distribute` value.
        replicas: devices (or processes) one batch is split over.
        is_writer: whether this process writes checkpoints and logs.
        callbacks_before, callbacks_after: Keras callbacks `train` places before and after its
            checkpoint callback (set by `prepare`).
    """

    name = "none"
    replicas = 1
    is_writer = True

    def __init__(self):
        self.callbacks_before = []
        self.callbacks_after = []

    def scope(self):
        """The context the model is built, compiled and fitted in (and that ends the distribution)."""
        return contextlib.nullcontext()

    def shard(self, dataset):
        """The part of `dataset`'s batches this process feeds to `fit` (all of them but on PyTorch)."""
        return dataset

    def prepare(self, model, seed):
        """Called once the model is compiled (or resumed), before `fit`."""

    def describe(self):
        """Text for the run's log line ('' for one device)."""
        return ""


class KerasDistribution(Distribution):
    """A `keras.distribution` distribution (JAX: `DataParallel`, `ModelParallel`): its scope is all `fit`
    needs."""

    def __init__(self, name, distribution):
        super().__init__()
        self.name = name
        self.distribution = distribution
        self.replicas = len(distribution.device_mesh.devices.ravel())
        # Several JAX processes (multi-host, `sharding.initialize_multi_host`): each feeds its rows of every
        # batch, and process 0 writes.
        self.share = data_share(distribution)
        self.is_writer = process()[0] == 0
        if self.share[1] > 1:  # `shard` splits our PyDataset; Keras' auto-sharding takes only a tf.data.Dataset
            distribution.auto_shard_dataset = False

    def scope(self):
        return self.distribution.scope()

    def shard(self, dataset):
        if dataset is not None and not dataset.training:
            self._check_validation(dataset)
        if dataset is None or self.share[1] == 1:
            return dataset
        return distributed.RankShard(dataset, *self.share)

    def _check_validation(self, dataset):
        """Keras shards every batch over the batch axis, the last, partial batch of a validation list too:
        a clear error here rather than JAX's in the first evaluation."""
        mesh = self.distribution.device_mesh
        split = mesh.shape[mesh.axis_names.index(self.distribution.batch_dim_name)]
        videos = len(getattr(dataset, "dataset", dataset).records)
        if videos % split:
            raise ValueError(
                f"The validation list has {videos} videos, which do not split evenly over the {split} devices of "
                f"the batch axis: keras.distribution shards every batch, the last one too; use a validation list "
                f"of a multiple of {split} videos."
            )

    def describe(self):
        mesh = self.distribution.device_mesh
        axes = dict(zip(mesh.axis_names, mesh.shape))
        kind = type(self.distribution).__name__
        return f"{self.name} over {self.replicas} devices (keras.distribution.{kind}, mesh {axes})"


class StrategyDistribution(Distribution):
    """A `tf.distribute` strategy (TensorFlow): build, compile and fit inside its scope."""

    name = "data-parallel"

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy
        self.replicas = int(strategy.num_replicas_in_sync)

    def scope(self):
        return self.strategy.scope()

    def describe(self):
        return f"data-parallel over {self.replicas} replicas (tf.distribute.{type(self.strategy).__name__})"


class TorchDistribution(Distribution):
    """One `torchrun` process of a PyTorch data-parallel run (`backends.distributed.TorchDataParallel`)."""

    name = "data-parallel"

    def __init__(self, environ=None):
        super().__init__()
        self.group = distributed.TorchDataParallel(environ)
        self.replicas = self.group.world_size
        self.is_writer = self.group.rank == 0

    def shard(self, dataset):
        if dataset is None:
            return None
        return distributed.RankShard(dataset, self.group.rank, self.group.world_size)

    def prepare(self, model, seed):
        self.group.broadcast_weights(model)
        self.group.average_gradients(model)
        self.callbacks_before = [distributed.MetricAverage(self.group)]
        self.callbacks_after = [distributed.RankSeed(self.group, seed)]

    def describe(self):
        return (
            f"data-parallel over {self.replicas} processes (torch.distributed, rank {self.group.rank}, "
            "gradients averaged by all-reduce)"
        )

    @contextlib.contextmanager
    def scope(self):
        try:
            yield self
        finally:  # also on an error: leave the process group, so the other ranks fail instead of waiting
            self.group.close()


def check_batch(batch_size, replicas, what):
    if batch_size % replicas:
        raise ValueError(
            f"`batch_size` {batch_size} does not split evenly over {replicas} {what}: data-parallel training "
            f"gives every one the same number of clips; use a multiple of {replicas}."
        )


def _data_parallel(batch_size, environ=None):
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        check_batch(batch_size, len(devices), f"devices ({', '.join(devices)})")
        return KerasDistribution("data-parallel", keras.distribution.DataParallel(devices=devices))
    if backend == "tensorflow":
        if distributed.tf_workers(environ) > 1:
            raise ValueError(
                "`distribute` data-parallel on TensorFlow trains on the devices of one machine (MirroredStrategy): "
                "TF_CONFIG names several workers, and Keras 3's fit fails under MultiWorkerMirroredStrategy "
                "(keras-team/keras#20585). Across machines, train on JAX (multi-host) or PyTorch (torchrun)."
            )
        strategy = distributed.tf_strategy()
        check_batch(batch_size, strategy.num_replicas_in_sync, "replicas")
        return StrategyDistribution(strategy)
    if backend == "torch":
        world = distributed.torchrun_world(environ)
        if world is None:
            raise ValueError(
                "`distribute` data-parallel on the PyTorch backend runs one process per device, started by "
                f"torchrun (RANK and WORLD_SIZE are not set): {TORCHRUN_EXAMPLE}"
            )
        check_batch(batch_size, world[1], "torchrun processes")
        return TorchDistribution(environ)
    raise ValueError(f"`distribute` data-parallel is not available on the {backend!r} backend.")


def distribution_for(config, environ=None):
    """The `Distribution` of `config.distribute` (None or 'none': one device).

    Raises:
        ValueError: an unknown value, a `batch_size` that does not split evenly over the devices, PyTorch
            data-parallel started without torchrun, a `mesh` without model-parallel.
    """
    name = config.distribute or "none"
    mesh = getattr(config, "mesh", None)
    if mesh is not None and name != "model-parallel":
        raise ValueError(f"`mesh` {mesh!r} is for `distribute` model-parallel, not {name!r}.")
    if name == "none":
        return Distribution()
    if name == "data-parallel":
        return _data_parallel(config.batch_size, environ)
    if name == "model-parallel":
        return KerasDistribution(name, model_parallel(mesh, config.batch_size))
    raise ValueError(f"`distribute` must be one of {', '.join(CHOICES)}; got {name!r}.")
