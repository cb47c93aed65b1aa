"""The analytic training memory of rematerialised models (`memory(..., remat=True)`, `fits_in_memory`).

With remat every block keeps only its input; the peak comes in the backward pass of one block, which
holds that block's recomputed activations and the gradients of their float tensors. Checked here: the
properties that follow from that (for every full-size preset from 8 to 64 frames), explicit C-VidTr
cases (its largest block is a joint layer after the pooling layers), and the estimate against peak
resident memory measured on TensorFlow (PyTorch honours remat too since the encoder fix of its
backward-pass memory, and XLA on the CPU with the flag importing vidtr_keras sets:
`vidtr_keras.backends.xla_cpu`, specified in test_performance.py).
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidtr_keras.complexity import fits_in_memory, memory, model_spec
from vidtr_keras.models.presets import PRESETS

GIB = 2**30
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
