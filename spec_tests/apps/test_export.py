"""Exports that run without Keras: each artefact is loaded back with its own runtime (TensorFlow for a
SavedModel, onnxruntime for ONNX, the LiteRT interpreter for .tflite) and must give the Keras logits
within 1e-4 at two batch sizes (the batch dimension is dynamic), for the vanilla model (joint
attention), VidTr (separable attention, class-token grid) and C-VidTr (std top-k selection as one-hot
gathers, then joint layers). Formats a backend cannot export raise a clear error instead.

Each export takes 3-20 s, so the models are micro (width 16, 1-2 layers, 4 frames of 16x16 px) and, on
TensorFlow, ONNX and LiteRT run on the vanilla and C-VidTr models only (the grid VidTr's einsums are the
same ops as C-VidTr's separable layers): VIDTR_EXPORT_ALL=1 runs every variant for every format.
"""

import os

import numpy as np
import pytest

from vidtr_keras import VidTrVideoClassifier, build_model, cli
from vidtr_keras.apps.export import FORMATS, check_supported, export_model, load_exported, supported_formats

from helpers import BACKEND, run_compiled, to_numpy

MICRO = dict(hidden_dim=16, num_heads=2, mlp_dim=32, image_size=16, patch_size=(1, 8, 8), num_frames=4)
VARIANTS = {
    "vanilla": dict(attention="joint", num_layers=1),
    "vidtr": dict(attention="temporal_spatial", num_layers=1),
    "cvidtr": dict(attention="temporal_spatial", num_layers=2, pool_layers=(0,), frames_dropped=(2,)),
}
SUFFIX = {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}
# The slowest exports (tf2onnx and the TFLite converter of the grid model) run only on request.
SLOW = {("tensorflow", "onnx", "vidtr"), ("tensorflow", "litert", "vidtr")}
EXPECTED = {"tensorflow": ("saved_model", "onnx", "litert"), "jax": ("saved_model", "onnx"), "torch": ("onnx",)}


def micro_model(variant, num_classes=3):
    return build_model("vidtr_tiny", num_classes=num_classes, **MICRO, **VARIANTS[variant])


def clips(batch, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, 4, 16, 16, 3)).astype("float32")


def require(fmt):
    """Skips when the exporter of `fmt` for this backend is not installed (the `export` extra)."""
    try:
        check_supported(fmt)
    except ImportError as err:
        pytest.skip(str(err))


def run_with_runtime(fmt, path, x):
    """Runs the artefact with its own runtime (no Keras); returns (logits, dynamic batch dimension?)."""
    if fmt == "saved_model":
        tf = pytest.importorskip("tensorflow", reason="the SavedModel runtime is TensorFlow")
        loaded = tf.saved_model.load(path)
        spec = loaded.serve.concrete_functions[0].structured_input_signature[0][0]
        return loaded.serve(tf.constant(x)).numpy(), spec.shape[0] is None
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        entry = session.get_inputs()[0]
        return session.run(None, {entry.name: x})[0], not isinstance(entry.shape[0], int)
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")
    interpreter = litert.Interpreter(model_path=path)
    entry = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(entry["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return out, int(entry["shape_signature"][0]) == -1


def test_the_support_table_is_what_this_backend_exports():
    assert supported_formats() == EXPECTED[BACKEND]
    assert set(supported_formats("tensorflow")) == set(FORMATS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_export_round_trips_with_its_own_runtime(fmt, variant, tmp_path):
    if fmt not in supported_formats():
        pytest.skip(
            f"{fmt} does not export from the {BACKEND} backend (test_unsupported_format_error checks the error)"
        )
    if (BACKEND, fmt, variant) in SLOW and not os.environ.get("VIDTR_EXPORT_ALL"):
        pytest.skip(f"slow export ({fmt} of the grid VidTr on {BACKEND}); VIDTR_EXPORT_ALL=1 runs it")
    require(fmt)
    model = micro_model(variant)
    x = clips(3)
    expected = to_numpy(run_compiled(lambda x: model(x, training=False), x))  # one compiled call on JAX
    path = str(tmp_path / f"{variant}{SUFFIX[fmt]}")
    result = export_model(model, path, format=fmt)
    assert result.path == path and os.path.exists(path)
    assert result.input_shape == (None, 4, 16, 16, 3) and result.num_classes == 3
    for batch in (1, 3):
        got, dynamic = run_with_runtime(fmt, path, x[:batch])
        assert dynamic, f"the {fmt} artefact has a fixed batch size"
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, expected[:batch], atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unsupported_format_error(fmt, tmp_path):
    if fmt in supported_formats():
        pytest.skip(f"{fmt} exports from the {BACKEND} backend")
    with pytest.raises(ValueError) as err:
        export_model(micro_model("vanilla"), str(tmp_path / f"m{SUFFIX[fmt]}"), format=fmt)
    message = str(err.value)
    assert fmt in message and BACKEND in message
    for working in supported_formats():  # names what works from here ...
        assert working in message
    assert "tensorflow" in message  # ... and the backend that exports this format
    assert not os.listdir(tmp_path)


def test_bad_arguments_raise_clear_errors(tmp_path):
    model = micro_model("vanilla")
    with pytest.raises(ValueError, match="Unknown export `format` 'torchscript'"):
        export_model(model, str(tmp_path / "m.pt"), format="torchscript")
    with pytest.raises(ValueError, match="jax"):
        check_supported("litert", "jax")
    if "saved_model" in supported_formats():
        require("saved_model")
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("")
        with pytest.raises(ValueError, match="not empty"):
            export_model(model, str(tmp_path / "full"), format="saved_model")
    if "onnx" in supported_formats():
        require("onnx")
        with pytest.raises(ValueError, match=r"ending in \.onnx"):
            export_model(model, str(tmp_path / "model.bin"), format="onnx")


def test_vidtr_export_command_on_a_preset_directory(tmp_path, capsys):
    """`vidtr export --model PRESET_DIR --format F --output P`: the artefact gives the preset's logits,
    read back by its runtime and by `load_exported` (the serving helper of docs/export-and-serving.md)."""
    classifier = VidTrVideoClassifier(micro_model("vanilla").backbone, 3, class_names=["a", "b", "c"])
    classifier.save_to_preset(tmp_path / "preset")
    fmt = supported_formats()[0]
    require(fmt)
    out = str(tmp_path / f"exported{SUFFIX[fmt]}")
    code = cli.main(["export", "--model", str(tmp_path / "preset"), "--format", fmt, "--output", out])
    assert code == 0, capsys.readouterr().out
    assert out in capsys.readouterr().out.replace("\n", "")
    x = clips(2, seed=4)
    got, _ = run_with_runtime(fmt, out, x)
    expected = to_numpy(classifier(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(load_exported(out)(x), expected, atol=1e-4, rtol=0)
    with pytest.raises(FileNotFoundError):
        load_exported(str(tmp_path / "missing.onnx"))
    unsupported = [f for f in FORMATS if f not in supported_formats()]
    if unsupported:
        bad = unsupported[0]
        code = cli.main(
            [
                "export",
                "--model",
                str(tmp_path / "preset"),
                "--format",
                bad,
                "--output",
                str(tmp_path / f"b{SUFFIX[bad]}"),
            ]
        )
        assert code == 2
        assert "does not export from" in capsys.readouterr().out.replace("\n", " ")
