"""PyTorch on the CPU: intra-op threads for small models, and where attention runs fused.

Threads. Below `SMALL_MODEL_MACS` multiply-adds per training batch (forward pass), PyTorch's per-op work
is too small to split over threads: eager PyTorch runs thousands of tiny ops per training step of a
small model, and every OpenMP parallel region then only adds a barrier, which costs a whole scheduler
time slice whenever another process holds the other core. `intra_op_threads("auto", ...)` therefore
picks one thread for a small model (the tiny presets) and keeps torch's default (one per core) for a
big one (VidTr-S gains from every core); `torch_threads` applies a count for a `with` block. `vidtr
train` uses both (`--threads`). The behaviour is specified, without wall-clock figures, in
spec_tests/backends/test_torch_cpu.py.

Fused attention. On PyTorch `keras.ops.dot_product_attention` is
`torch.nn.functional.scaled_dot_product_attention`, which never writes the attention map: the vanilla
model's joint attention and its inference ran faster with it, outputs equal up to float rounding.
XLA (JAX) and TensorFlow ran it no faster than the plain softmax(q k^T) v, which they keep; so does
separable attention, whose small spatial maps measured no faster fused inside the model. Hence
`fused_attention_by_default(backend)`: PyTorch only. `JointAttention(fused_attention=None)` and
`vidtr_keras.config.enable_fused_attention()` override it. Measured: results/fused_attention.md
(`python -m benchmarks fused_attention`).
"""

import keras
import numpy as np

# Forward-pass multiply-adds of one training batch below which PyTorch runs on one intra-op thread:
# vidtr_tiny's walk-through batch (2 x 4 x 32 x 32) is about 3e6; VidTr-S at 8 x 224 x 224 is 1.6e11
# per clip.
SMALL_MODEL_MACS = 1e9


def intra_op_threads(threads, batch_macs, backend=None):
    """The PyTorch intra-op thread count a run uses: None keeps the backend's default.

    Args:
        threads: "auto", None or a positive integer.
        batch_macs: multiply-adds of the forward pass of one training batch (None: unknown).
        backend: the Keras backend (the current one by default).

    "auto" picks 1 on PyTorch when `batch_macs` < `SMALL_MODEL_MACS`, else the default. TensorFlow and
    JAX keep their own thread pools (they fix them at start-up), so an explicit integer is an error there.
    """
    backend = backend or keras.backend.backend()
    if threads is None:
        return None
    if threads == "auto":
        if backend == "torch" and batch_macs is not None and batch_macs < SMALL_MODEL_MACS:
            return 1
        return None
    value = int(threads) if isinstance(threads, (int, np.integer)) or str(threads).isdigit() else 0
    if isinstance(threads, bool) or value < 1:
        raise ValueError(f"`threads` must be 'auto', None or a positive integer, got {threads!r}.")
    if backend != "torch":
        raise ValueError(
            f"`threads` {value} applies to the PyTorch backend; {backend!r} fixes its thread pool at start-up "
            "(TensorFlow: tf.config.threading before any op; JAX: XLA_FLAGS). Use 'auto' here."
        )
    return value


class torch_threads:
    """Sets torch's intra-op threads for the `with` block and restores them afterwards (None: no change)."""

    def __init__(self, threads):
        self.threads = threads
        self.previous = None

    def __enter__(self):
        if self.threads is not None:
            import torch  # only reached on the torch backend, with a thread count to set

            self.previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            import torch

            torch.set_num_threads(self.previous)
        return False


def fused_attention_by_default(backend):
    """Whether joint attention runs fused when neither the layer nor `vidtr_keras.config` says: PyTorch only."""
    return backend == "torch"


def seed_for_epoch(seed, epoch):
    """Seeds torch's global generator from (seed, epoch); `vidtr train` calls it at the start of every epoch.

    Torch's dropout draws from torch's global generator, which Keras' torch data loader also draws from
    (a different number of times in a resumed run); seeding it per epoch makes each epoch's dropout masks
    independent of what came before, so `--resume` continues a killed run exactly.
    """
    import torch  # only reached on the torch backend

    torch.manual_seed(int(np.random.default_rng([int(seed) % 2**63, 3, int(epoch)]).integers(2**62)))
