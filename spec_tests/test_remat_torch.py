"""Rematerialisation lowers PyTorch training memory, and leaves the global Keras state as it found it.

On PyTorch `keras.remat` is `torch.utils.checkpoint` (non-reentrant), which ends the backward-pass
recomputation of a block early by raising an exception out of it. Raised through Keras' layer-call
error handlers, that exception sat in a reference cycle that held the recomputed activations until
Python's cyclic garbage collector ran, so they piled up over the backward pass and remat saved no
memory (the encoder block now turns those handlers off inside its rematerialised call). Checked here
on PyTorch, with the collector off during the step so the measure does not depend on when it runs:
the heap bytes in use at the peak of forward + backward with remat are at most half of those without,
the backward pass leaves no more behind than without remat, and the gradients are unchanged. The
outputs and gradients with and without remat (dropout on) are compared on every backend in
test_performance.py.
"""

import ctypes
import ctypes.util
import gc

import keras
import numpy as np
import pytest

from vidtr_keras.layers.encoder import VidTrEncoderBlock
from vidtr_keras.models import build_model

from helpers import BACKEND, to_numpy

MIB = 2**20
SIZE = 48
_TORCH_ONLY = pytest.mark.skipif(BACKEND != "torch", reason="measures PyTorch's autograd (torch.utils.checkpoint)")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def _heap_in_use():
    """A function returning the bytes the C heap has handed out (glibc `mallinfo2`: heap chunks in use
    in every arena plus mmapped blocks; PyTorch's CPU tensors live there), or None where unavailable."""
    name = ctypes.util.find_library("c")
    try:
        mallinfo2 = ctypes.CDLL(name).mallinfo2
    except (OSError, AttributeError, TypeError):
        return None
    mallinfo2.restype = _MallInfo2

    def in_use():
        info = mallinfo2()
        return info.uordblks + info.hblkhd

    return in_use


def _pair(**overrides):
    """vidtr_tiny (with `overrides`) without and with remat, same weights, on a clip large enough that
    activations dominate the parameters (8 frames at 48 px)."""
    models = []
    for remat in (False, True):
        keras.utils.set_random_seed(7)
        models.append(build_model("vidtr_tiny", num_frames=8, image_size=SIZE, remat=remat, **overrides))
    x = np.random.default_rng(0).standard_normal((1, 8, SIZE, SIZE, 3)).astype("float32")
    for model in models:
        model(x)
    models[1].set_weights(models[0].get_weights())
    return models[0], models[1], x


def _training_step(model, x, in_use):
    """One forward + backward on PyTorch with the cyclic garbage collector off; returns the peak heap
    bytes in use above the start (sampled after the forward pass, whenever a parameter's gradient is
    computed, and at the end), the bytes left at the end beyond the gradients, and the gradients."""
    import torch  # the backend under test; this helper only runs on PyTorch

    y = np.array([1], dtype="int32")
    samples = []
    hooks = [v.value.register_hook(lambda grad: samples.append(in_use())) for v in model.trainable_variables]
    model.zero_grad()
    gc.collect()
    gc.disable()
    try:
        start = in_use()
        logits = model(x, training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        samples.append(in_use())
        loss.backward()
        end = in_use()
    finally:
        gc.enable()
        for hook in hooks:
            hook.remove()
    grads = [v.value.grad for v in model.trainable_variables]
    grad_bytes = sum(g.numel() * g.element_size() for g in grads)
    assert all(isinstance(g, torch.Tensor) for g in grads)
    return max(samples + [end]) - start, end - start - grad_bytes, [to_numpy(g) for g in grads]


def _saved_for_backward_bytes(model, x, training=True):
    """Bytes of the distinct storages autograd saves for the backward pass outside checkpointed regions
    (inside one, PyTorch's checkpoint stores placeholders and recomputes the tensors)."""
    import torch  # the backend under test

    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, training=training)
    return sum(storages.values())


@_TORCH_ONLY
def test_remat_halves_peak_training_memory_on_torch_with_the_same_gradients():
    in_use = _heap_in_use()
    if in_use is None:
        pytest.skip("needs glibc's mallinfo2 to read the heap bytes in use")
    # Six layers, so that the activations of all blocks clearly outweigh one recomputed block; no
    # dropout, so that the gradients of the two models are comparable after the warm-up steps.
    plain, remat, x = _pair(num_layers=6, head_dropout=0.0, dropout=0.0, attention_dropout=0.0)
    for model in (plain, remat):  # warm-up: one-time allocations of the first step (kernels, thread pools)
        _training_step(model, x, in_use)
    plain_peak, plain_left, plain_grads = _training_step(plain, x, in_use)
    remat_peak, remat_left, remat_grads = _training_step(remat, x, in_use)
    # Measured on Linux/glibc: 5.6 MiB without remat, 2.0 MiB with it (one block's recomputation and
    # the gradients); before the fix the recomputed activations all stayed: 6.5 MiB.
    assert plain_peak > 2 * MIB
    assert remat_peak <= 0.5 * plain_peak, (remat_peak / MIB, plain_peak / MIB)
    # The backward pass leaves as much behind as without remat (0.5 MiB besides the gradients; before
    # the fix, 5.3 MiB more: the recomputations).
    assert abs(remat_left - plain_left) < 0.1 * plain_peak, (remat_left / MIB, plain_left / MIB)
    for a, b, v in zip(plain_grads, remat_grads, plain.trainable_variables):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(a).max())), err_msg=v.path)


@_TORCH_ONLY
def test_remat_saves_only_block_inputs_for_the_backward_pass_on_torch():
    plain, remat, x = _pair()
    plain_bytes = _saved_for_backward_bytes(plain, x)
    remat_bytes = _saved_for_backward_bytes(remat, x)
    assert remat_bytes <= 0.5 * plain_bytes, (remat_bytes / MIB, plain_bytes / MIB)
    # Outside training the option does nothing: the same tensors are saved with and without it.
    assert _saved_for_backward_bytes(remat, x, training=False) == _saved_for_backward_bytes(plain, x, training=False)


@pytest.mark.parametrize("filtering", [True, False])
def test_remat_training_call_leaves_traceback_filtering_as_it_was(filtering):
    """The rematerialised block turns Keras' traceback filtering off while it runs (see the module
    docstring) and restores the user's setting afterwards, also when the block fails inside."""
    block = VidTrEncoderBlock(2, 16, dropout=0.0, attention_dropout=0.0, remat=True)
    tokens = np.random.default_rng(0).standard_normal((1, 2, 3, 8)).astype("float32")
    block(tokens)
    was = keras.config.is_traceback_filtering_enabled()
    try:
        (keras.config.enable_traceback_filtering if filtering else keras.config.disable_traceback_filtering)()
        out = block(tokens, training=True)
        assert keras.config.is_traceback_filtering_enabled() is filtering
        np.testing.assert_allclose(to_numpy(out), to_numpy(block(tokens, training=False)), atol=1e-5)
        # A position embedding that does not broadcast fails inside the rematerialised call.
        with pytest.raises(Exception):  # noqa: B017 (each backend raises its own error type)
            block(tokens, position_embedding=np.zeros((1, 1, 5, 8), "float32"), training=True)
        assert keras.config.is_traceback_filtering_enabled() is filtering
    finally:
        (keras.config.enable_traceback_filtering if was else keras.config.disable_traceback_filtering)()
