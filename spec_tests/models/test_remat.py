"""Rematerialisation (`remat=True`): what it computes, what it saves, and the memory model of it.

1. Same model: with and without remat the outputs, gradients and dropout seeds are the same on every
   backend (dropout on), training really draws dropout, inference is unchanged and the option
   serialises.
2. Memory actually saved. On PyTorch `keras.remat` is `torch.utils.checkpoint` (non-reentrant), which
   ends the backward-pass recomputation of a block early by raising an exception out of it. Raised
   through Keras' layer-call error handlers, that exception sat in a reference cycle that held the
   recomputed activations until Python's cyclic garbage collector ran, so they piled up over the
   backward pass and remat saved no memory (the encoder block now turns those handlers off inside its
   rematerialised call). Checked on PyTorch, with the collector off during the step so the measure does
   not depend on when it runs: the heap bytes in use at the peak of forward + backward with remat are at
   most half of those without, the backward pass leaves no more behind than without remat, and the
   gradients are unchanged. On JAX, XLA's own buffer assignment of the compiled step (XLA:CPU keeps remat
   apart only with the flag importing vidtr_keras sets: `vidtr_keras.backends.xla_cpu`).
3. The analytic training memory of rematerialised models (`memory(..., remat=True)`, `fits_in_memory`).
   With remat every block keeps only its input; the peak comes in the backward pass of one block, which
   holds that block's recomputed activations and the gradients of their float tensors. Checked: the
   properties that follow from that (for every full-size preset from 8 to 64 frames), explicit C-VidTr
   cases (its largest block is a joint layer after the pooling layers), and the estimate against peak
   resident memory measured on TensorFlow.
"""

import ctypes
import ctypes.util
import gc
import os
import weakref

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidtr_keras.complexity import fits_in_memory, memory, model_spec
from vidtr_keras.layers.encoder import VidTrEncoderBlock
from vidtr_keras.models import VidTrBackbone, build_model
from vidtr_keras.models.presets import PRESETS

from helpers import BACKEND, to_numpy

MIB = 2**20
GIB = 2**30
SIZE = 48
_TORCH_ONLY = pytest.mark.skipif(BACKEND != "torch", reason="measures PyTorch's autograd (torch.utils.checkpoint)")


# --- Memory remat saves on PyTorch (heap bytes at the step's peak, what autograd keeps); Keras state.


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


# --- Same model with and without remat, on every backend.


def _loss(y, logits):
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))


# One jitted step per model (JAX): the state, clip and labels are arguments, so calling it again (the
# second and third steps below) reuses the compiled step instead of compiling the same one anew.
_JAX_STEPS = weakref.WeakKeyDictionary()


def _jax_step(model):
    if model not in _JAX_STEPS:
        import jax

        def step(tv, ntv, x, y):
            def f(tv):
                logits, new_ntv = model.stateless_call(tv, ntv, x, training=True)
                return _loss(y, logits), (logits, new_ntv)

            return jax.value_and_grad(f, has_aux=True)(tv)

        _JAX_STEPS[model] = jax.jit(step)
    return _JAX_STEPS[model]


def _loss_and_grads(model, x, y):
    """Training-mode logits and d loss / d trainable variables on the current backend (test-side
    backend code), with the non-trainable state (dropout seeds) after the step."""

    def loss_fn(logits):
        return _loss(y, logits)

    if BACKEND == "jax":
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        (_, (logits, new_ntv)), grads = _jax_step(model)(tv, ntv, x, y)
        return to_numpy(logits), [to_numpy(g) for g in grads], [to_numpy(v) for v in new_ntv]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(logits)
        grads = tape.gradient(loss, model.trainable_variables)
    else:
        logits = model(x, training=True)
        loss_fn(logits).backward()
        grads = [v.value.grad for v in model.trainable_variables]
    return to_numpy(logits), [to_numpy(g) for g in grads], [to_numpy(v) for v in model.non_trainable_variables]


def _seeded_pair(preset, **kwargs):
    """The same model built without and with remat, sharing weights and dropout seeds."""
    keras.utils.set_random_seed(7)
    plain = build_model(preset, remat=False, **kwargs)
    keras.utils.set_random_seed(7)
    remat = build_model(preset, remat=True, **kwargs)
    frames = plain.backbone.num_frames if hasattr(plain, "backbone") else 4
    x = np.random.default_rng(0).standard_normal((2, frames, 32, 32, 3)).astype("float32")
    plain(x)
    remat(x)
    remat.set_weights(plain.get_weights())
    return plain, remat, x


_SLOW_ON_JAX = pytest.mark.skipif(
    BACKEND == "jax", reason="compiling the pooled model's step twice takes minutes on XLA:CPU; TF and torch cover it"
)


@pytest.mark.parametrize("preset", ["vidtr_tiny", pytest.param("cvidtr_tiny", marks=_SLOW_ON_JAX), "vanilla_tiny"])
def test_remat_gives_the_same_outputs_and_gradients_with_dropout_on(preset):
    plain, remat, x = _seeded_pair(preset, dropout=0.2, attention_dropout=0.2)
    y = np.array([1, 3], dtype="int32")
    # Same global RNG state for both steps: PyTorch's unseeded Dropout draws from torch's global
    # generator (torch.utils.checkpoint restores it for the recomputation).
    keras.utils.set_random_seed(11)
    out_a, grads_a, state_a = _loss_and_grads(plain, x, y)
    keras.utils.set_random_seed(11)
    out_b, grads_b, state_b = _loss_and_grads(remat, x, y)
    np.testing.assert_allclose(out_b, out_a, rtol=1e-5, atol=1e-5)
    assert len(grads_a) == len(grads_b)
    for ga, gb, v in zip(grads_a, grads_b, plain.trainable_variables):
        scale = max(1.0, float(np.abs(ga).max()))
        np.testing.assert_allclose(gb, ga, rtol=1e-4, atol=1e-5 * scale, err_msg=v.path)
    # The dropout seeds advance as without remat (the recomputation draws the same masks).
    for sa, sb in zip(state_a, state_b):
        np.testing.assert_array_equal(sb, sa)


def test_remat_training_really_uses_dropout():
    """The equality above would be vacuous if dropout were off: two steps give different logits."""
    _, remat, x = _seeded_pair("vidtr_tiny", dropout=0.2, attention_dropout=0.2)
    y = np.array([1, 3], dtype="int32")
    first = _loss_and_grads(remat, x, y)[0]
    if BACKEND == "jax":  # stateless: feed the advanced seeds back
        for v, value in zip(remat.non_trainable_variables, _loss_and_grads(remat, x, y)[2]):
            v.assign(value)
    second = _loss_and_grads(remat, x, y)[0]
    assert np.abs(first - second).max() > 1e-4


def test_remat_inference_is_unchanged_and_the_option_serialises():
    plain, remat, x = _seeded_pair("vidtr_tiny")
    np.testing.assert_allclose(to_numpy(remat(x, training=False)), to_numpy(plain(x, training=False)), atol=1e-6)
    config = remat.backbone.get_config()
    assert config["remat"] is True
    rebuilt = VidTrBackbone.from_config(config)
    blocks = [layer for layer in rebuilt.layers if isinstance(layer, VidTrEncoderBlock)]
    assert blocks and all(block.remat for block in blocks)
    assert VidTrEncoderBlock.from_config(blocks[0].get_config()).remat


# --- Memory measured by the backend's compiler; the analytic memory model of remat.


def test_xla_activation_memory_is_at_least_2x_lower_with_remat():
    """What XLA really allocates for the backward pass (its buffer assignment), remat vs not.

    XLA:CPU keeps remat apart only with its barrier-removing pass disabled, which importing
    vidtr_keras arranges (`vidtr_keras.backends.xla_cpu`); without it both sizes were equal."""
    if BACKEND != "jax":
        pytest.skip("XLA's memory analysis of a compiled step is available on JAX only")
    import jax

    from vidtr_keras.backends import xla_cpu

    assert xla_cpu.remat_kept(), os.environ.get("XLA_FLAGS")
    sizes = {}
    for remat in (False, True):
        keras.utils.set_random_seed(0)
        model = build_model("vidtr_tiny", remat=remat, num_layers=6, hidden_dim=64, mlp_dim=128)
        x = np.zeros((1, 8, 64, 64, 3), "float32")
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]

        def loss(tv, x, model=model, ntv=ntv):
            return keras.ops.sum(model.stateless_call(tv, ntv, x, training=True)[0])

        compiled = jax.jit(jax.grad(loss)).lower(tv, x).compile()
        sizes[remat] = compiled.memory_analysis().temp_size_in_bytes
    assert sizes[False] >= 2 * sizes[True], sizes


def test_memory_model_remat_keeps_at_least_2x_less_activation_memory():
    for preset, frames in (("vidtr_s", 8), ("vidtr_s", 64), ("vanilla_s", 8), ("cvidtr_s", 8)):
        plain = memory(preset, frames=frames, optimizer_slots=1)
        lean = memory(preset, frames=frames, optimizer_slots=1, remat=True)
        assert lean.remat and not plain.remat
        assert plain.activation_bytes >= 2 * lean.activation_bytes, (preset, frames)
        assert lean.state_bytes == plain.state_bytes
    components = memory("vidtr_s", remat=True).by_component()
    assert set(components) == {"embedding", "block_input", "recomputed_block", "head"}


FRAMES = (8, 16, 32, 64)
FULL_SIZE = sorted(name for name, entry in PRESETS.items() if entry["config"].get("num_layers", 12) >= 12)


def _valid_frames(preset):
    """The clip lengths of FRAMES the preset's pooling schedule accepts."""
    out = []
    for frames in FRAMES:
        try:
            model_spec(preset, frames=frames).layers()
        except ValueError:
            continue
        out.append(frames)
    return out


def _part(report, component):
    return sum(r.bytes for r in report.rows if r.component == component)


def _block_bytes(report, layer):
    """Bytes the layer keeps without remat, and the float part of them (what gets a gradient)."""
    rows = [r for r in report.rows if r.layer == layer]
    return sum(r.bytes for r in rows), sum(r.bytes for r in rows if r.component != "dropout_masks")


def test_full_size_presets_are_found():
    assert {"vidtr_s", "cvidtr_s", "vanilla_s"} <= set(FULL_SIZE)
    assert all(_valid_frames(p) for p in FULL_SIZE)
    assert "vidtr_tiny" not in FULL_SIZE


@pytest.mark.parametrize("preset", FULL_SIZE)
def test_remat_estimate_is_below_the_plain_one_and_grows_with_frames(preset):
    previous = None
    for frames in _valid_frames(preset):
        plain = memory(preset, frames=frames, optimizer_slots=1)
        lean = memory(preset, frames=frames, optimizer_slots=1, remat=True)
        assert lean.activation_bytes < plain.activation_bytes, (preset, frames)
        assert lean.state_bytes == plain.state_bytes
        if previous is not None:
            # Longer clips: at least the extra kept block inputs, and more in the recomputed block.
            grown = lean.activation_bytes - previous.activation_bytes
            assert grown >= _part(lean, "block_input") - _part(previous, "block_input") > 0, (preset, frames)
            assert _part(lean, "recomputed_block") > _part(previous, "recomputed_block"), (preset, frames)
        previous = lean


@pytest.mark.parametrize("preset", FULL_SIZE)
def test_recomputed_block_holds_the_largest_block_and_its_gradients(preset):
    for frames in _valid_frames(preset):
        plain = memory(preset, frames=frames)
        lean = memory(preset, frames=frames, remat=True)
        blocks = [_block_bytes(plain, layer.index) for layer in plain.spec.layers()]
        recomputed = _part(lean, "recomputed_block")
        # Every block's activations and float gradients fit in it; the largest one's exactly.
        assert recomputed == max(kept + floats for kept, floats in blocks), (preset, frames)
        assert max(kept for kept, _ in blocks) < recomputed < 2 * max(kept for kept, _ in blocks)
        # Kept inputs: one (tokens + bypassing class token) x width tensor per block.
        d = plain.spec.hidden_dim
        inputs = sum((layer.tokens_in + layer.bypass_tokens) * d * 4 for layer in plain.spec.layers())
        assert _part(lean, "block_input") == inputs


def test_cvidtr_largest_block_is_a_joint_layer_after_pooling():
    # C-VidTr-S, 32 frames: pooling at layers 1, 3, 5 leaves 26 frames for the joint layers 6-11, whose
    # attention over 1 + 26 x 196 tokens outweighs the separable first (un-pooled) block.
    plain = memory("cvidtr_s", frames=32)
    lean = memory("cvidtr_s", frames=32, remat=True)
    layers = plain.spec.layers()
    assert layers[0].pooling is None and layers[0].frames_in == 32 and layers[6].kind == "joint"
    first, first_floats = _block_bytes(plain, 0)
    joint, joint_floats = _block_bytes(plain, 6)
    assert joint > 4 * first
    recomputed = _part(lean, "recomputed_block")
    assert recomputed == joint + joint_floats
    # The estimate covers the first un-pooled block (activations and gradients) and all kept inputs.
    assert lean.activation_bytes >= first + first_floats + _part(lean, "block_input")
    # Before the fix only the joint block's activations were counted: 3.1 GiB against 6.8 GiB measured.
    assert lean.activation_bytes > 1.7 * (joint + _part(lean, "block_input"))


def test_remat_estimate_scales_with_batch_and_float_width():
    one = memory("cvidtr_s", frames=16, remat=True)
    three = memory("cvidtr_s", frames=16, remat=True, batch_size=3)
    assert three.activation_bytes == 3 * one.activation_bytes
    half = memory("cvidtr_s", frames=16, remat=True, dtype_bytes=2)
    # Floats halve; the dropout masks stay one byte each.
    assert one.activation_bytes / 2 < half.activation_bytes < 0.55 * one.activation_bytes


# Peak resident memory of one TensorFlow training step (SGD with momentum, batch 1, float32) with
# remat, measured in a fresh process on a 2-core Xeon, 23.5 GiB RAM (tensorflow 2.21, keras 3.15):
# `python -m vidtr_keras.complexity.benchmark` as `python -m reproduce benchmark` runs it
# (results/benchmark_runs.json; the 112 px row measured on its own). (preset, frames, image size, bytes)
MEASURED_TF_REMAT_PEAK = (
    ("vidtr_s", 8, 224, 2_643_496_960),
    ("vidtr_s", 8, 224, 2_556_997_632),
    ("vidtr_s", 16, 224, 2_887_647_232),
    ("vidtr_s", 32, 224, 3_674_492_928),
    ("vidtr_s", 64, 224, 4_846_862_336),
    ("vanilla_s", 8, 224, 3_059_560_448),
    ("vanilla_s", 16, 224, 5_337_911_296),
    ("cvidtr_s", 8, 224, 2_464_223_232),
    ("cvidtr_s", 16, 224, 3_318_161_408),
    ("cvidtr_s", 32, 224, 9_259_438_080),
    ("cvidtr_s", 32, 112, 2_762_932_224),
)


@pytest.mark.parametrize("preset,frames,image_size,peak", MEASURED_TF_REMAT_PEAK)
def test_remat_prediction_within_15_percent_of_measured_peak(preset, frames, image_size, peak):
    fit = fits_in_memory(preset, 64 * GIB, frames=frames, image_size=image_size, remat=True)
    assert 0.85 <= peak / fit.required_bytes <= 1.15, (preset, frames, peak / fit.required_bytes)


def test_fit_prediction_with_remat_explicit_cases():
    # C-VidTr-S at 64 frames with remat was killed for memory on a 23.5 GiB machine: its joint layers
    # attend over 1 + 58 x 196 tokens, and their maps and gradients alone need more than that.
    killed = fits_in_memory("cvidtr_s", int(23.5 * GIB), frames=64, remat=True)
    assert not killed.fits and killed.required_bytes > 23.5 * GIB
    # 32 frames ran (8.6 GiB peak).
    assert fits_in_memory("cvidtr_s", int(23.5 * GIB), frames=32, remat=True).fits
    # VidTr-S at 64 frames: 16.7 GiB without remat, 4.5 GiB with.
    assert fits_in_memory("vidtr_s", 8 * GIB, frames=64, remat=True).fits
    assert not fits_in_memory("vidtr_s", 8 * GIB, frames=64).fits


@given(
    preset=st.sampled_from(["vidtr_s", "cvidtr_s", "vanilla_s"]),
    frames=st.sampled_from([8, 16, 32]),
    margin=st.floats(0.0, 0.5),
    mixed=st.booleans(),
)
def test_fit_prediction_with_remat_adds_up_and_decides_at_the_budget(preset, frames, margin, mixed):
    probe = fits_in_memory(preset, GIB, frames=frames, remat=True, margin=margin, mixed_precision=mixed)
    report = memory(preset, frames=frames, remat=True, optimizer_slots=1, dtype_bytes=2 if mixed else 4)
    assert probe.remat and probe.activation_bytes == report.activation_bytes
    assert probe.required_bytes == int(probe.runtime_bytes + probe.state_bytes + probe.activation_bytes * (1 + margin))
    exact = fits_in_memory(
        preset, probe.required_bytes, frames=frames, remat=True, margin=margin, mixed_precision=mixed
    )
    short = fits_in_memory(
        preset, probe.required_bytes - 1, frames=frames, remat=True, margin=margin, mixed_precision=mixed
    )
    assert exact.fits and not short.fits
    plain = fits_in_memory(preset, GIB, frames=frames, margin=margin, mixed_precision=mixed)
    assert probe.required_bytes < plain.required_bytes
