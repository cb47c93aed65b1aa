"""Model parallelism and multi-host training on JAX, with Keras' own machinery (`keras.distribution`).

`model_parallel(mesh)` is a `keras.distribution.ModelParallel` over a (data, model) device mesh whose
`LayoutMap` splits every encoder block's attention projections and MLP over the "model" axis in the
Megatron-LM manner (Shoeybi et al. 2019, arXiv:1909.08053, Section 3): the first matmul of each pair is
split by columns (the packed q/k/v projection, the first MLP dense), the second by rows (the attention
output projection, the second MLP dense), so that a pair's partial results meet in one reduction. The
strided convolution of convolutional temporal pooling (Table 4d) is split by output channels. Everything
else (patch embedding, class tokens, position embedding, LayerNorms, the head, the biases added after a
row-split matmul) is replicated, and each batch is split over the "batch" axis. Keras creates every
variable already sharded (and the optimizer's slots with the layout of their variable), and XLA's GSPMD
partitioner inserts the collectives (keras.io guide "Distributed training with Keras 3").

One caveat of the packed projection: its 3 x width columns are q | k | v, so a column split does not
fall on head boundaries (with 2 shards, the first holds q and half of k). The step is still exact: GSPMD
moves what each head needs; it is only less communication-free than Megatron's per-head split.

`initialize_multi_host()` starts several processes (hosts) as one JAX cluster with
`keras.distribution.initialize()` when Keras' variables KERAS_DISTRIBUTION_JOB_ADDRESSES (the
coordinator's host:port first), KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID are
set; `keras.distribution.list_devices()` then lists the devices of all processes.
"""

import contextlib
import os
import re

import keras

DATA_AXIS = "batch"
MODEL_AXIS = "model"

# Weight path (a regex on `variable.path`, e.g. "encoder_block_0/attention/in_proj_kernel") -> the mesh
# axis of each dimension. The paths are those of `VidTrEncoderBlock` (joint, separable and C-VidTr blocks
# share them); weights that match nothing are replicated.
LAYOUT_RULES = {
    r".*attention/in_proj_kernel": (None, MODEL_AXIS),  # (width, 3 width): column split
    r".*attention/in_proj_bias": (MODEL_AXIS,),
    r".*attention/out_proj_kernel": (MODEL_AXIS, None),  # (width, width): row split
    r".*mlp_dense1/kernel": (None, MODEL_AXIS),  # (width, MLP): column split
    r".*mlp_dense1/bias": (MODEL_AXIS,),
    r".*mlp_dense2/kernel": (MODEL_AXIS, None),  # (MLP, width): row split
    r".*pooling/conv/kernel": (None, None, None, MODEL_AXIS),  # (stride, 1, width, width): output channels
    r".*pooling/conv/bias": (MODEL_AXIS,),
}

ENVIRONMENT = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID")
_joined = []  # (process id, processes) of the cluster this process joined


def parse_mesh(text):
    """`mesh` as written on a command line, DATAxMODEL (e.g. "1x2"): (data, model) device counts."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match or 0 in (data := int(match[1]), model := int(match[2])):
        raise ValueError(
            f"`mesh` must be DATAxMODEL with two positive device counts (e.g. 1x2: the batch whole, the model "
            f"split over 2 devices), got {text!r}"
        )
    return data, model


def mesh_from_text(text):
    """`mesh` checked and written as `TrainConfig` keeps it ("2x4")."""
    data, model = parse_mesh(text)
    return f"{data}x{model}"


def _check_jax(what):
    if keras.backend.backend() != "jax":
        raise ValueError(
            f"{what} needs the JAX backend (keras.distribution); this run uses {keras.backend.backend()!r}. "
            "Set KERAS_BACKEND=jax."
        )


def layout_map(device_mesh):
    """The Megatron-style `keras.distribution.LayoutMap` of `LAYOUT_RULES` on `device_mesh`."""
    layouts = keras.distribution.LayoutMap(device_mesh)
    for pattern, axes in LAYOUT_RULES.items():
        layouts[pattern] = axes
    return layouts


class MegatronParallel(keras.distribution.ModelParallel):
    """`keras.distribution.ModelParallel` that names the weight and the mesh when a weight's dimension
    cannot be split evenly over its mesh axis (JAX would stop with an IndivisibleError from deep in the
    variable's creation)."""

    def get_variable_layout(self, variable):
        layout = super().get_variable_layout(variable)
        sizes = dict(zip(self.device_mesh.axis_names, self.device_mesh.shape))
        for dim, (length, axis) in enumerate(zip(variable.shape, layout.axes)):
            if axis is not None and length % sizes[axis]:
                raise ValueError(
                    f"`mesh` {sizes[DATA_AXIS]}x{sizes[MODEL_AXIS]}: weight {variable.path!r} of shape "
                    f"{tuple(variable.shape)} cannot be split over the {sizes[axis]} devices of the {axis!r} axis "
                    f"(dimension {dim} is {length}); choose a model axis that divides the model's width and MLP "
                    "width (and 3 x width)."
                )
        return layout


def model_parallel(mesh, batch_size=None, devices=None):
    """A `keras.distribution.ModelParallel` for VidTr on a DATAxMODEL device mesh (JAX only).

    Args:
        mesh: "DATAxMODEL" text or a (data, model) pair; data x model must be the number of devices
            (default: 1 x the device count, every device on the model axis).
        batch_size: clips per step (the global batch); must split evenly over the data axis.
        devices: the devices to use (default: `keras.distribution.list_devices()`, every process's).

    Returns:
        a `MegatronParallel` (a `keras.distribution.ModelParallel`); build and train the model in its
        `scope()`.

    Raises:
        ValueError naming `mesh` or `batch_size` for a mesh that does not match the devices, a bad mesh,
        a batch that does not split over the data axis, a backend other than JAX, or several processes.
    """
    _check_jax("`distribute` model-parallel")
    if process()[1] > 1:
        raise ValueError(
            "`distribute` model-parallel runs in one process (one host and its devices): one process writes the "
            "checkpoint with np.array of every weight, which JAX gives only for a weight whose shards that process "
            "holds, and the layouts where it would (the model axis inside each host) are not tested here; across "
            "hosts, train data-parallel."
        )
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    if mesh is None:
        mesh = (1, len(devices))
    data, model = parse_mesh(mesh) if isinstance(mesh, str) else (int(mesh[0]), int(mesh[1]))
    if data < 1 or model < 1:
        raise ValueError(f"`mesh` needs positive device counts, got {data}x{model}.")
    if data * model != len(devices):
        raise ValueError(
            f"`mesh` {data}x{model} needs {data * model} devices, but there are {len(devices)} ({devices}); "
            f"the data and model axes must multiply to the device count."
        )
    if batch_size is not None and batch_size % data:
        raise ValueError(
            f"`batch_size` {batch_size} does not split evenly over the {data} devices of the data axis of `mesh` "
            f"{data}x{model}."
        )
    device_mesh = keras.distribution.DeviceMesh((data, model), (DATA_AXIS, MODEL_AXIS), devices)
    return MegatronParallel(layout_map=layout_map(device_mesh), batch_dim_name=DATA_AXIS)


def multi_host_requested(environ=None):
    """Whether Keras' multi-process variables (`ENVIRONMENT`) are set."""
    environ = os.environ if environ is None else environ
    return any(environ.get(name) for name in ENVIRONMENT)


def initialize_multi_host(environ=None):
    """Joins this process to a multi-host JAX cluster when Keras' variables ask for it (see the module
    docstring); returns (process id, number of processes), (0, 1) when they are not set.

    Must run before anything computes on a device. The coordinator (process 0) listens at the first
    address of KERAS_DISTRIBUTION_JOB_ADDRESSES; every process passes the same address and count.
    """
    environ = os.environ if environ is None else environ
    if not multi_host_requested(environ):
        return 0, 1
    _check_jax("multi-host training (the KERAS_DISTRIBUTION_* variables)")
    missing = [name for name in ENVIRONMENT if not environ.get(name)]
    if missing:
        raise ValueError(f"multi-host training needs all of {', '.join(ENVIRONMENT)}; {', '.join(missing)} not set.")
    count, rank = environ["KERAS_DISTRIBUTION_NUM_PROCESSES"], environ["KERAS_DISTRIBUTION_PROCESS_ID"]
    if not (count.isdigit() and rank.isdigit() and int(rank) < int(count)):
        raise ValueError(
            f"KERAS_DISTRIBUTION_PROCESS_ID {rank!r} must be a number below KERAS_DISTRIBUTION_NUM_PROCESSES {count!r}."
        )
    if not _joined:  # once per process: JAX refuses a second initialize
        keras.distribution.initialize()
        _joined.append((int(rank), int(count)))
    return int(rank), int(count)


def process():
    """(process id, number of processes) of the cluster `initialize_multi_host` joined; (0, 1) alone."""
    return _joined[0] if _joined else (0, 1)


def data_share(distribution):
    """(index, count) of the part of every global batch this process feeds to `fit` under a
    `keras.distribution` distribution: with several processes, each gives the rows of the devices it
    holds on the data axis (`jax.make_array_from_process_local_data`, which Keras' JAX trainer calls,
    puts process 0's rows first); processes that hold the same data-axis position give the same rows.
    Keras' own rule (`Distribution.data_shard_id`): count = min(model replicas, processes)."""
    count = min(distribution.num_model_replicas, distribution.num_processes)
    return distribution.data_shard_id, count


@contextlib.contextmanager
def outside_distribution():
    """No `keras.distribution` for what one process does alone (writing a checkpoint): under a multi-process
    distribution, every variable Keras creates meanwhile (saving builds a throw-away optimizer) would be
    placed on the devices of all processes, a collective the other processes never join."""
    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)
