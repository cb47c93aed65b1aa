"""ViT -> VidTr inflation: readers of the three ViT formats, where every tensor lands, and what
an inflated model computes on clips against a plain-numpy ViT.

What the math makes equal, and what these tests verify numerically (nothing else is claimed):
- Patch embedding: on a clip of identical frames every temporal token equals the image model's patch
  embedding, for square patches and for tubelets of t > 1 frames with both "central" (the image kernel in
  one frame, zeros in the others: sum_t W_t x = W x) and "average" (W / t in each of t frames) init.
- Token input: the patch embedding of every frame plus its entries of the position table equals the
  ViT's patch tokens + their positions (wherever the model then adds the table); in the grid layout
  each frame row [spatial class token, patches] (+ positions) is exactly the ViT's input sequence
  [class token, patches] + positions, and the temporal class-token row is the class token + the ViT
  positions.
- A whole model: with spatial-only separable attention (Table 4b) the rows of the token grid never mix, so
  every frame row [spatial class token, patches] goes through the image model on its own. With ViT's
  GELU and LayerNorm epsilon the backbone's feature (the mean over frames of the spatial class tokens)
  equals the mean of the per-frame class features, for ANY clip (the image's feature for identical
  frames), of: the plain ViT when its position embedding is zero; otherwise the ViT with its position
  embedding moved to where VidTr (like the official code) adds it, the normalised input of the first
  block (it reaches q, k, v but not the residual stream) — which measurably differs from the plain ViT.
  This checks every tensor of every block functionally (q/k/v order, head split, out proj, MLP, norms,
  final norm, class token, positions, their resizing).
- Not equal, hence not claimed: VidTr-S/M/L's first temporal attention mixes each patch column with its
  temporal class token (row 0 = class token + position, unlike the frame rows), the vanilla model adds
  the position embedding to queries and keys only (not to the residual stream, unlike ViT) and its joint
  attention sees each patch key T times, and C-VidTr's separable layers leave the class token out of
  the attention.
"""

import argparse
import importlib.util
import os
import sys
import types
from functools import cache

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidtr_keras import build_model
from vidtr_keras.cli import convert as cli_convert
from vidtr_keras.convert import vit as vit_convert
from vidtr_keras.layers import PositionEmbedding, TubeletEmbedding

import oracle
from helpers import run_compiled, to_numpy
from strategies import seeds

# === A tiny ViT in each source format (random weights, real names and layouts) ===

D, LAYERS, HEADS, MLP, PATCH = 32, 3, 4, 64, 8  # the tiny presets' transformer


def timm_state_dict(seed=0, d=D, layers=LAYERS, mlp=MLP, patch=(PATCH, PATCH), channels=3, grid=(4, 4)):
    """A timm `VisionTransformer` state dict: PyTorch layouts (Linear (out, in), conv (d, C, h, w))."""
    rng = np.random.default_rng(seed)
    s = grid[0] * grid[1]
    sd = {
        "cls_token": rng.normal(0, 0.5, (1, 1, d)),
        "pos_embed": rng.normal(0, 0.5, (1, 1 + s, d)),
        "patch_embed.proj.weight": rng.normal(0, 0.1, (d, channels) + tuple(patch)),
        "patch_embed.proj.bias": rng.normal(0, 0.1, (d,)),
        "norm.weight": 1 + rng.normal(0, 0.1, (d,)),
        "norm.bias": rng.normal(0, 0.1, (d,)),
        "head.weight": rng.normal(0, 0.1, (7, d)),
        "head.bias": rng.normal(0, 0.1, (7,)),
    }
    for i in range(layers):
        p = f"blocks.{i}."
        sd.update(
            {
                p + "norm1.weight": 1 + rng.normal(0, 0.1, (d,)),
                p + "norm1.bias": rng.normal(0, 0.1, (d,)),
                p + "attn.qkv.weight": rng.normal(0, 0.3, (3 * d, d)),
                p + "attn.qkv.bias": rng.normal(0, 0.1, (3 * d,)),
                p + "attn.proj.weight": rng.normal(0, 0.2, (d, d)),
                p + "attn.proj.bias": rng.normal(0, 0.1, (d,)),
                p + "norm2.weight": 1 + rng.normal(0, 0.1, (d,)),
                p + "norm2.bias": rng.normal(0, 0.1, (d,)),
                p + "mlp.fc1.weight": rng.normal(0, 0.2, (mlp, d)),
                p + "mlp.fc1.bias": rng.normal(0, 0.1, (mlp,)),
                p + "mlp.fc2.weight": rng.normal(0, 0.2, (d, mlp)),
                p + "mlp.fc2.bias": rng.normal(0, 0.1, (d,)),
            }
        )
    return {k: v.astype("float32") for k, v in sd.items()}


def jax_arrays(sd, heads=HEADS, naming="original"):
    """The same ViT under the JAX/Flax names (google-research/vision_transformer; big_vision's variant)."""
    d = sd["cls_token"].shape[-1]
    layers = sum(1 for k in sd if k.endswith("norm1.weight"))
    big = naming == "big_vision"
    prefix = {"original": "", "opt_target": "opt/target/", "big_vision": "params/"}[naming]
    attn, ln2, mlp = (
        ("MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0")
        if big
        else ("MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3")
    )
    out = {
        "cls": sd["cls_token"],
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),  # (h, w, C, d)
        "embedding/bias": sd["patch_embed.proj.bias"],
        ("pos_embedding" if big else "Transformer/posembed_input/pos_embedding"): sd["pos_embed"],
        "Transformer/encoder_norm/scale": sd["norm.weight"],
        "Transformer/encoder_norm/bias": sd["norm.bias"],
        "head/kernel": sd["head.weight"].T,
        "head/bias": sd["head.bias"],
    }
    for i in range(layers):
        p, b = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        out[b + "LayerNorm_0/scale"], out[b + "LayerNorm_0/bias"] = sd[p + "norm1.weight"], sd[p + "norm1.bias"]
        out[b + ln2 + "/scale"], out[b + ln2 + "/bias"] = sd[p + "norm2.weight"], sd[p + "norm2.bias"]
        w, bias = sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]
        for j, part in enumerate(("query", "key", "value")):
            out[f"{b}{attn}/{part}/kernel"] = w[j * d : (j + 1) * d].T.reshape(d, heads, d // heads)
            out[f"{b}{attn}/{part}/bias"] = bias[j * d : (j + 1) * d].reshape(heads, d // heads)
        out[f"{b}{attn}/out/kernel"] = sd[p + "attn.proj.weight"].T.reshape(heads, d // heads, d)
        out[f"{b}{attn}/out/bias"] = sd[p + "attn.proj.bias"]
        for j in (0, 1):
            out[f"{b}{mlp}/Dense_{j}/kernel"] = sd[p + f"mlp.fc{j + 1}.weight"].T
            out[f"{b}{mlp}/Dense_{j}/bias"] = sd[p + f"mlp.fc{j + 1}.bias"]
    return {prefix + k: np.ascontiguousarray(v) for k, v in out.items()}


# === A plain-numpy ViT (timm layouts, float64), independent of the library ===


def vit_patch_embed(sd, images):
    """images (B, H, W, C) -> (B, gh, gw, d)."""
    w, b = sd["patch_embed.proj.weight"].astype("float64"), sd["patch_embed.proj.bias"]
    _, _, ph, pw = w.shape
    n, h, wd, c = images.shape
    x = images.astype("float64").reshape(n, h // ph, ph, wd // pw, pw, c)
    return np.einsum("bHhWwc,dchw->bHWd", x, w) + b


def vit_tokens(sd, images, heads=HEADS, eps=1e-6, pos=None, pos_on_first_norm=False):
    """The ViT's final-normed tokens (B, 1 + S, d) for images (B, H, W, C).

    pos_on_first_norm: add the position embedding where VidTr does (to the normalised input of the
    first block, so it reaches q, k, v but not the residual stream) instead of ViT's input tokens.
    """
    x = vit_patch_embed(sd, images)
    n, d = x.shape[0], x.shape[-1]
    x = x.reshape(n, -1, d)
    pos = sd["pos_embed"][0] if pos is None else pos
    x = np.concatenate([np.broadcast_to(sd["cls_token"][0], (n, 1, d)), x], axis=1)
    if not pos_on_first_norm:
        x = x + pos
    i = 0
    while f"blocks.{i}.norm1.weight" in sd:
        p = {k[len(f"blocks.{i}.") :]: v.astype("float64") for k, v in sd.items() if k.startswith(f"blocks.{i}.")}
        y = oracle.layer_norm(x, p["norm1.weight"], p["norm1.bias"], eps)
        if pos_on_first_norm and i == 0:
            y = y + pos
        qkv = oracle.linear(y, p["attn.qkv.weight"], p["attn.qkv.bias"]).reshape(n, -1, 3, heads, d // heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        probs = oracle.softmax(np.einsum("bqhe,bkhe->bhqk", q, k) / np.sqrt(d // heads))
        attn = np.einsum("bhqk,bkhe->bqhe", probs, v).reshape(n, -1, d)
        x = x + oracle.linear(attn, p["attn.proj.weight"], p["attn.proj.bias"])
        y = oracle.layer_norm(x, p["norm2.weight"], p["norm2.bias"], eps)
        y = oracle.gelu(oracle.linear(y, p["mlp.fc1.weight"], p["mlp.fc1.bias"]))
        x = x + oracle.linear(y, p["mlp.fc2.weight"], p["mlp.fc2.bias"])
        i += 1
    return oracle.layer_norm(x, sd["norm.weight"], sd["norm.bias"], eps)


# === Inflated models, built once per module (a JAX model build costs seconds) ===

VARIANTS = {
    "vidtr": ("vidtr_tiny", {}, "central"),
    "vidtr_tubelet2_central": ("vidtr_tiny", {"patch_size": (2, 8, 8)}, "central"),
    "vanilla_tubelet4_average": ("vanilla_tiny", {"num_frames": 8, "patch_size": (4, 8, 8)}, "average"),
    "cvidtr": ("cvidtr_tiny", {}, "central"),
    "cvidtr_tubelet2_average_conv_pooling": (
        "cvidtr_tiny",
        {"patch_size": (2, 8, 8), "frames_dropped": (2, 1), "pooling": "conv"},
        "average",
    ),
}


@cache
def inflated(variant):
    """(model, its weights before inflation, the timm state dict, the report)."""
    preset, overrides, init = VARIANTS[variant]
    keras.utils.set_random_seed(7)
    model = build_model(preset, num_classes=5, **overrides)
    before = {v.path: to_numpy(v).copy() for v in model.weights}
    sd = timm_state_dict(seed=len(variant))
    report = vit_convert.inflate(model, sd, tubelet_init=init, num_heads=HEADS)
    return model, before, sd, report


def weights_by_path(model):
    return {v.path: to_numpy(v) for v in model.weights}


# === Readers ===


def _assert_same_vit(got, want, num_heads):
    assert sorted(got.arrays) == sorted(want.arrays)
    for name in want.arrays:
        np.testing.assert_array_equal(got.arrays[name], want.arrays[name], err_msg=name)
    assert got.grid_size == want.grid_size == (4, 4)
    assert got.num_heads == num_heads
    assert (got.hidden_dim, got.num_layers, got.mlp_dim, got.patch_size) == (D, LAYERS, MLP, (PATCH, PATCH))


def test_timm_dict_in_a_training_checkpoint_reads_the_same():
    sd = timm_state_dict()
    got = vit_convert.read_vit({"model": {"module." + k: v for k, v in sd.items()}}, num_heads=HEADS)
    _assert_same_vit(got, vit_convert.from_timm(sd), HEADS)


@pytest.mark.parametrize("fmt", ["npz", "pth", "safetensors"])
def test_timm_formats_read_the_same(fmt, tmp_path, monkeypatch):
    sd = timm_state_dict()
    want = vit_convert.from_timm(sd)
    path = tmp_path / f"vit.{fmt}"
    if fmt == "npz":
        np.savez(path, **sd)
    elif fmt == "pth":
        if importlib.util.find_spec("torch") is None:  # the tensorflow/jax test envs do not install torch
            path.write_bytes(b"not read")
            with pytest.raises(ImportError, match="needs torch"):
                vit_convert.read_vit(str(path))
            pytest.skip("torch is not installed in this environment: checked the clear ImportError, not the reading")
        import torch

        torch.save({"model": {"module." + k: torch.from_numpy(v) for k, v in sd.items()}, "epoch": 3}, path)
    else:
        from safetensors.numpy import save_file  # the `test` extra installs safetensors (timm's format today)

        save_file(sd, str(path))
    if fmt != "pth":  # .npz and .safetensors are read with numpy alone: the reader must not need torch
        monkeypatch.setitem(sys.modules, "torch", None)
    _assert_same_vit(vit_convert.read_vit(str(path), num_heads=HEADS), want, HEADS)


def test_a_bfloat16_safetensors_checkpoint_reads_as_float32(tmp_path):
    # Checkpoints are often shared in bfloat16, which numpy knows through ml_dtypes (a Keras dependency).
    import ml_dtypes
    from safetensors.numpy import save_file

    sd = {k: v.astype(ml_dtypes.bfloat16) for k, v in timm_state_dict().items()}
    save_file(sd, str(tmp_path / "vit.safetensors"))
    got = vit_convert.read_vit(str(tmp_path / "vit.safetensors"), num_heads=HEADS)
    _assert_same_vit(got, vit_convert.from_timm({k: v.astype("float32") for k, v in sd.items()}), HEADS)
    assert {a.dtype for a in got.arrays.values()} == {np.dtype("float32")}


def test_a_safetensors_checkpoint_inflates_like_its_state_dict(tmp_path):
    # A timm checkpoint as timm and the Hugging Face hub publish it today: model.safetensors, timm names,
    # the classifier head included.
    from safetensors.numpy import save_file

    want_model, _, sd, _ = inflated("vidtr")
    path = tmp_path / "model.safetensors"
    save_file(sd, str(path))
    preset, overrides, init = VARIANTS["vidtr"]
    model = build_model(preset, num_classes=5, **overrides)
    report = vit_convert.inflate(model, str(path), tubelet_init=init, num_heads=HEADS)
    assert {a.source_name for a in report.assignments} == {k for k in sd if not k.startswith("head.")}
    want, got = weights_by_path(want_model), weights_by_path(model)
    copied = [p for p in want if not p.startswith("head/")]
    assert len(copied) == len(report.assignments)
    for name in copied:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize(
    "module,suffix,message",
    [("torch", "pth", "needs torch"), ("safetensors", "safetensors", "needs the safetensors")],
)
def test_missing_optional_packages_are_clear_import_errors(module, suffix, message, tmp_path, monkeypatch):
    # Wherever the package happens to be installed, hide it: the error must name what to install.
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    path = tmp_path / f"vit.{suffix}"
    path.write_bytes(b"x")
    with pytest.raises(ImportError, match=message) as err:
        vit_convert.from_timm(str(path))
    assert "pip install" in str(err.value)


@pytest.mark.parametrize("naming,as_file", [("original", True), ("opt_target", False), ("big_vision", False)])
def test_jax_npz_reads_like_timm(naming, as_file, tmp_path):
    sd = timm_state_dict(seed=1)
    arrays = jax_arrays(sd, naming=naming)
    source = arrays
    if as_file:
        source = str(tmp_path / "ViT-tiny.npz")
        np.savez(source, **arrays)
    got = vit_convert.read_vit(source)
    _assert_same_vit(got, vit_convert.from_timm(sd), HEADS)  # heads read from the query kernel
    assert got.source_names["block_0/attention/qkv_kernel"].endswith("{query,key,value}/kernel")


def keras_hub_or_skip():
    """keras_hub, which every tox env installs (tox.ini, commands_pre); elsewhere an optional package, whose
    absence is checked to be a clear ImportError before the test is skipped."""
    if importlib.util.find_spec("keras_hub") is None:
        with pytest.raises(ImportError, match="needs keras-hub.*pip install keras-hub"):
            vit_convert.from_keras_hub("vit_base_patch16_224_imagenet")
        if "TOX_ENV_NAME" in os.environ:  # a skip here would hide the reader from CI again
            pytest.fail("keras-hub is missing from this tox env, which tox.ini's commands_pre installs")
        pytest.skip("keras-hub (optional) is not installed: checked the clear ImportError, not the reader")
    import keras_hub

    return keras_hub


@cache
def keras_hub_vit():
    """A keras-hub ViTBackbone of the tiny presets' transformer on 32 x 32 images, built here (no download),
    every weight random (keras-hub initialises biases to zeros and LayerNorm to the identity, which would
    let a wrong bias or norm mapping pass)."""
    keras_hub = keras_hub_or_skip()
    hub = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=PATCH, num_layers=LAYERS, num_heads=HEADS, hidden_dim=D, mlp_dim=MLP
    )
    rng = np.random.default_rng(21)
    for v in hub.weights:
        scale = 0.1 if v.path.endswith(("gamma", "beta", "bias")) else 0.3
        v.assign((v.path.endswith("gamma") + rng.normal(0, scale, v.shape)).astype("float32"))
    return hub


def test_keras_hub_reader_reads_what_the_backbone_computes():
    hub = keras_hub_vit()
    vit = vit_convert.from_keras_hub(hub)
    assert (vit.hidden_dim, vit.num_layers, vit.mlp_dim, vit.patch_size) == (D, LAYERS, MLP, (PATCH, PATCH))
    assert (vit.grid_size, vit.num_heads, vit.layer_norm_epsilon) == ((4, 4), HEADS, 1e-6)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(hub(images)), vit_tokens(_timm_from_canonical(vit), images), atol=1e-4)


@pytest.mark.filterwarnings("ignore:`compile\\(\\)` was not called:UserWarning")  # keras-hub's task, loaded
def test_a_saved_keras_hub_vit_inflates_into_vidtr(tmp_path):
    keras_hub = keras_hub_or_skip()
    hub = keras_hub_vit()
    want = vit_convert.from_keras_hub(hub)
    hub.save(tmp_path / "vit.keras")
    # A task model holding the backbone (as a fine-tuned classifier is saved) reads as its backbone.
    keras_hub.models.ViTImageClassifier(backbone=hub, num_classes=3).save(tmp_path / "classifier.keras")
    for name in ("vit.keras", "classifier.keras"):
        got = vit_convert.read_vit(str(tmp_path / name))
        assert sorted(got.arrays) == sorted(want.arrays)
        for key, value in want.arrays.items():
            np.testing.assert_array_equal(got.arrays[key], value, err_msg=f"{name}: {key}")
        assert (got.grid_size, got.num_heads) == ((4, 4), HEADS)

    model = spatial_only_model()  # 2-frame tubelets: "average" puts kernel / 2 in each frame
    vit_convert.inflate(model, str(tmp_path / "vit.keras"), tubelet_init="average")
    got = weights_by_path(model)
    # keras-hub's own variable names, not the reader's table, say what each model variable should hold.
    h = {v.path.split("/", 1)[1]: to_numpy(v) for v in hub.weights}  # without vit_encoder/, vit_patching...
    kernel = h["patch_embedding/kernel"]
    np.testing.assert_allclose(got["patch_embedding/projection/kernel"], np.stack([kernel / 2, kernel / 2]), rtol=1e-6)
    np.testing.assert_array_equal(got["patch_embedding/projection/bias"], h["patch_embedding/bias"])
    pos, cls = h["position_embedding/embeddings"], h["class_token"].reshape(-1)
    np.testing.assert_array_equal(got["position_embedding/embeddings"][0], np.tile(pos, (4, 1)))  # 3 frames + class row
    assert np.all(got["class_tokens/temporal_class_tokens"] == cls)
    assert np.all(got["class_tokens/spatial_class_tokens"] == cls)
    for i in range(LAYERS):
        p, q = f"transformer_block_{i + 1}/", f"encoder_block_{i}/"
        qkv = [h[p + f"mha/{part}/kernel"].reshape(D, D) for part in ("query", "key", "value")]
        qkv_bias = [h[p + f"mha/{part}/bias"].reshape(D) for part in ("query", "key", "value")]
        pairs = {
            "norm1/gamma": h[p + "ln_1/gamma"],
            "norm1/beta": h[p + "ln_1/beta"],
            "norm2/gamma": h[p + "ln_2/gamma"],
            "norm2/beta": h[p + "ln_2/beta"],
            "attention/in_proj_kernel": np.concatenate(qkv, axis=1),
            "attention/in_proj_bias": np.concatenate(qkv_bias),
            "attention/out_proj_kernel": h[p + "mha/attention_output/kernel"].reshape(D, D),
            "attention/out_proj_bias": h[p + "mha/attention_output/bias"],
            "mlp_dense1/kernel": h[p + "mlp/dense_1/kernel"],
            "mlp_dense1/bias": h[p + "mlp/dense_1/bias"],
            "mlp_dense2/kernel": h[p + "mlp/dense_2/kernel"],
            "mlp_dense2/bias": h[p + "mlp/dense_2/bias"],
        }
        for name, value in pairs.items():
            np.testing.assert_array_equal(got[q + name], value, err_msg=q + name)
    np.testing.assert_array_equal(got["final_norm/gamma"], h["ln/gamma"])
    np.testing.assert_array_equal(got["final_norm/beta"], h["ln/beta"])


def _timm_from_canonical(vit):
    """Back to timm layouts, so the numpy ViT can run a description read from elsewhere."""
    a = vit.arrays
    sd = {
        "cls_token": a["class_token"].reshape(1, 1, -1),
        "pos_embed": a["position_embedding"][None],
        "patch_embed.proj.weight": a["patch_embedding/kernel"].transpose(3, 2, 0, 1),
        "patch_embed.proj.bias": a["patch_embedding/bias"],
        "norm.weight": a["final_norm/gamma"],
        "norm.bias": a["final_norm/beta"],
    }
    for i in range(vit.num_layers):
        p, q = f"blocks.{i}.", f"block_{i}/"
        sd.update(
            {
                p + "norm1.weight": a[q + "norm1/gamma"],
                p + "norm1.bias": a[q + "norm1/beta"],
                p + "norm2.weight": a[q + "norm2/gamma"],
                p + "norm2.bias": a[q + "norm2/beta"],
                p + "attn.qkv.weight": a[q + "attention/qkv_kernel"].T,
                p + "attn.qkv.bias": a[q + "attention/qkv_bias"],
                p + "attn.proj.weight": a[q + "attention/out_kernel"].T,
                p + "attn.proj.bias": a[q + "attention/out_bias"],
                p + "mlp.fc1.weight": a[q + "mlp/dense1_kernel"].T,
                p + "mlp.fc1.bias": a[q + "mlp/dense1_bias"],
                p + "mlp.fc2.weight": a[q + "mlp/dense2_kernel"].T,
                p + "mlp.fc2.bias": a[q + "mlp/dense2_bias"],
            }
        )
    return sd


class _KerasHubLikeViT:
    """The layer structure of keras-hub 0.32's ViTBackbone (`vit_patching_and_embedding` with a Conv2D,
    class token and Embedding; `vit_encoder` with blocks of LayerNormalization, MultiHeadAttention and a
    two-Dense MLP), built from Keras core layers so the structural reader runs without keras-hub."""

    def __init__(self, sd, heads=HEADS):
        d = sd["cls_token"].shape[-1]
        self.name, self.num_heads, self.image_shape, self.layer_norm_epsilon = "vit_like", heads, (32, 32, 3), 1e-6
        conv = keras.layers.Conv2D(d, PATCH, strides=PATCH, name="patch_embedding")
        conv.build((None, 32, 32, 3))
        conv.kernel.assign(sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0))
        conv.bias.assign(sd["patch_embed.proj.bias"])
        positions = keras.layers.Embedding(17, d, name="position_embedding")
        positions.build((1, 17))
        positions.embeddings.assign(sd["pos_embed"][0])
        self.embedding = types.SimpleNamespace(
            use_class_token=True,
            patch_embedding=conv,
            position_embedding=positions,
            class_token=keras.Variable(sd["cls_token"], name="class_token"),
        )
        blocks = []
        for i in range(LAYERS):
            p = f"blocks.{i}."
            norms = []
            for n in ("norm1", "norm2"):
                norm = keras.layers.LayerNormalization(epsilon=1e-6, name=f"ln_{n[-1]}")
                norm.build((None, None, d))
                norm.gamma.assign(sd[p + n + ".weight"])
                norm.beta.assign(sd[p + n + ".bias"])
                norms.append(norm)
            mha = keras.layers.MultiHeadAttention(heads, d // heads, name="mha")
            mha.build((None, None, d), (None, None, d))
            w, b = sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]
            for j, dense in enumerate((mha.query_dense, mha.key_dense, mha.value_dense)):
                dense.kernel.assign(w[j * d : (j + 1) * d].T.reshape(d, heads, d // heads))
                dense.bias.assign(b[j * d : (j + 1) * d].reshape(heads, d // heads))
            mha.output_dense.kernel.assign(sd[p + "attn.proj.weight"].T.reshape(heads, d // heads, d))
            mha.output_dense.bias.assign(sd[p + "attn.proj.bias"])
            denses = []
            for j, units in ((1, MLP), (2, d)):
                dense = keras.layers.Dense(units, name=f"dense_{j}")
                dense.build((None, d if j == 1 else MLP))
                dense.kernel.assign(sd[p + f"mlp.fc{j}.weight"].T)
                dense.bias.assign(sd[p + f"mlp.fc{j}.bias"])
                denses.append(dense)
            blocks.append(
                types.SimpleNamespace(
                    layer_norm_1=norms[0],
                    layer_norm_2=norms[1],
                    mha=mha,
                    mlp=types.SimpleNamespace(dense_1=denses[0], dense_2=denses[1]),
                )
            )
        final = keras.layers.LayerNormalization(epsilon=1e-6, name="ln")
        final.build((None, None, d))
        final.gamma.assign(sd["norm.weight"])
        final.beta.assign(sd["norm.bias"])
        self.encoder = types.SimpleNamespace(encoder_layers=blocks, layer_norm=final)

    def get_layer(self, name):
        return {"vit_patching_and_embedding": self.embedding, "vit_encoder": self.encoder}[name]


def test_keras_hub_structure_reader():
    sd = timm_state_dict(seed=2)
    like = _KerasHubLikeViT(sd)
    # The stand-in is a faithful ViT in Keras layouts: its attention matches the numpy ViT's.
    x = np.random.default_rng(3).normal(size=(2, 5, D)).astype("float32")
    mha = like.encoder.encoder_layers[0].mha
    p = {k[len("blocks.0.") :]: v for k, v in sd.items() if k.startswith("blocks.0.")}
    qkv = oracle.linear(x.astype("float64"), p["attn.qkv.weight"], p["attn.qkv.bias"]).reshape(2, 5, 3, HEADS, -1)
    probs = oracle.softmax(np.einsum("bqhe,bkhe->bhqk", qkv[:, :, 0], qkv[:, :, 1]) / np.sqrt(D // HEADS))
    want = oracle.linear(
        np.einsum("bhqk,bkhe->bqhe", probs, qkv[:, :, 2]).reshape(2, 5, D), p["attn.proj.weight"], p["attn.proj.bias"]
    )
    np.testing.assert_allclose(to_numpy(mha(x, x)), want, atol=1e-4)
    got = vit_convert._keras_hub_weights(like)
    _assert_same_vit(got, vit_convert.from_timm(sd), HEADS)
    assert got.layer_norm_epsilon == 1e-6


def test_reader_errors_are_clear(tmp_path):
    sd = timm_state_dict()
    with pytest.raises(ValueError, match="does not understand.*blocks.0.ls1.gamma"):
        vit_convert.from_timm({**sd, "blocks.0.ls1.gamma": np.ones(D, "float32")})  # LayerScale: not a plain ViT
    with pytest.raises(ValueError, match="missing tensor 'blocks.1.mlp.fc2.bias'"):
        vit_convert.from_timm({k: v for k, v in sd.items() if k != "blocks.1.mlp.fc2.bias"})
    bad = {**sd, "blocks.1.attn.qkv.weight": np.zeros((3 * D, D + 1), "float32")}
    with pytest.raises(ValueError, match="block_1/attention/qkv_kernel \\(blocks.1.attn.qkv.weight\\): \\(33, 96\\)"):
        vit_convert.from_timm(bad)
    wide = timm_state_dict(grid=(2, 3))
    with pytest.raises(ValueError, match="not 1 class position \\+ a square grid"):
        vit_convert.from_timm(wide)
    assert vit_convert.from_timm(wide, grid_size=(2, 3)).grid_size == (2, 3)
    with pytest.raises(ValueError, match="no class token"):
        vit_convert.from_jax({k: v for k, v in jax_arrays(sd).items() if k != "cls"})
    with pytest.raises(ValueError, match="has 4 heads, but num_heads=2"):
        vit_convert.read_vit(jax_arrays(sd), num_heads=2)
    with pytest.raises(FileNotFoundError):
        vit_convert.read_vit(str(tmp_path / "absent.npz"))
    (tmp_path / "vit.ckpt").write_bytes(b"x")
    with pytest.raises(ValueError, match="Unknown ViT file type"):
        vit_convert.read_vit(str(tmp_path / "vit.ckpt"))
    with pytest.raises(ValueError, match="Unrecognised ViT state dict"):
        vit_convert.read_vit({"weight": np.zeros(3)})


# === Where every tensor lands ===


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_tensor_lands(variant):
    model, before, sd, report = inflated(variant)
    backbone = model.backbone
    init = VARIANTS[variant][2]
    got = weights_by_path(model)
    pt = backbone.patch_size[0]
    t_tokens, s = backbone.token_frames, 16

    image_kernel = np.transpose(sd["patch_embed.proj.weight"], (2, 3, 1, 0))  # (d, C, h, w) -> (h, w, C, d)
    kernel = got["patch_embedding/projection/kernel"]
    assert kernel.shape == (pt, PATCH, PATCH, 3, D)
    for f in range(pt):
        if init == "average":
            want = image_kernel / pt
        else:
            want = image_kernel if f == pt // 2 else np.zeros_like(image_kernel)
        np.testing.assert_allclose(kernel[f], want, rtol=1e-6, err_msg=f"frame {f}")
    np.testing.assert_array_equal(got["patch_embedding/projection/bias"], sd["patch_embed.proj.bias"])

    pos, cls = sd["pos_embed"][0], sd["cls_token"][0, 0]
    table = got["position_embedding/embeddings"][0]
    if backbone.class_token_layout == "grid":
        assert table.shape == ((t_tokens + 1) * (s + 1), D)
        for row in range(t_tokens + 1):
            for col in range(s + 1):
                np.testing.assert_array_equal(table[row * (s + 1) + col], pos[col])
        assert np.all(got["class_tokens/temporal_class_tokens"] == cls)
        assert np.all(got["class_tokens/spatial_class_tokens"] == cls)
        assert got["class_tokens/spatial_class_tokens"].shape == (t_tokens, 1, D)
    else:
        assert table.shape == (1 + t_tokens * s, D)
        np.testing.assert_array_equal(table[0], pos[0])
        for frame in range(t_tokens):
            np.testing.assert_array_equal(table[1 + frame * s : 1 + (frame + 1) * s], pos[1:])
        np.testing.assert_array_equal(got["class_tokens/class_token"].reshape(-1), cls)

    for i in range(LAYERS):
        p, q = f"blocks.{i}.", f"encoder_block_{i}/"
        pairs = {
            "norm1/gamma": sd[p + "norm1.weight"],
            "norm1/beta": sd[p + "norm1.bias"],
            "norm2/gamma": sd[p + "norm2.weight"],
            "norm2/beta": sd[p + "norm2.bias"],
            "attention/in_proj_kernel": sd[p + "attn.qkv.weight"].T,
            "attention/in_proj_bias": sd[p + "attn.qkv.bias"],
            "attention/out_proj_kernel": sd[p + "attn.proj.weight"].T,
            "attention/out_proj_bias": sd[p + "attn.proj.bias"],
            "mlp_dense1/kernel": sd[p + "mlp.fc1.weight"].T,
            "mlp_dense1/bias": sd[p + "mlp.fc1.bias"],
            "mlp_dense2/kernel": sd[p + "mlp.fc2.weight"].T,
            "mlp_dense2/bias": sd[p + "mlp.fc2.bias"],
        }
        for name, want in pairs.items():
            np.testing.assert_array_equal(got[q + name], want, err_msg=q + name)
    np.testing.assert_array_equal(got["final_norm/gamma"], sd["norm.weight"])
    np.testing.assert_array_equal(got["final_norm/beta"], sd["norm.bias"])

    # The classifier head (and conv pooling's learned kernel) stay as initialised, and are reported so.
    left = sorted(p for p in got if p.startswith(("head/",)) or "/pooling/" in p)
    assert left and sorted(report.initialised) == left
    for path in left:
        np.testing.assert_array_equal(got[path], before[path], err_msg=path)
    assert ("pooling" in VARIANTS[variant][1]) == any("/pooling/" in p for p in left)
    assert len(report.assignments) == len(got) - len(left) == len({a.variable for a in report.assignments})
    assert {a.source_name for a in report.assignments} == {k for k in sd if not k.startswith("head.")}
    assert any("relu" in n for n in report.notes) and any("epsilon" in n for n in report.notes)


# === Identical frames: the inflated model's first stages equal the image model's ===


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_identical_frames_give_the_image_models_patch_tokens(variant):
    model, _, sd, _ = inflated(variant)
    backbone = model.backbone
    frames = backbone.num_frames
    image = np.random.default_rng(11).normal(size=(2, 32, 32, 3)).astype("float32")
    clip = np.repeat(image[:, None], frames, axis=1)  # (2, frames, 32, 32, 3), every frame the image
    patches = to_numpy(backbone.get_layer("patch_embedding")(clip))  # (2, T, 4, 4, d)
    vit_patches = vit_patch_embed(sd, image)  # (2, 4, 4, d)
    t_tokens = backbone.token_frames
    assert patches.shape == (2, t_tokens, 4, 4, D)
    for t in range(t_tokens):
        np.testing.assert_allclose(patches[:, t], vit_patches, atol=1e-4, err_msg=f"temporal token {t}")

    pos, cls = sd["pos_embed"][0], sd["cls_token"][0, 0]
    vit_input = np.concatenate([np.broadcast_to(cls, (2, 1, D)), vit_patches.reshape(2, 16, D)], axis=1) + pos
    table = to_numpy(backbone.get_layer("position_embedding")(patches))
    if backbone.class_token_layout == "grid":
        tokens = to_numpy(backbone.get_layer("class_tokens")(patches)) + table  # (2, T+1, S+1, d)
        for t in range(1, t_tokens + 1):  # each frame row is the ViT's input sequence
            np.testing.assert_allclose(tokens[:, t], vit_input, atol=1e-4, err_msg=f"frame row {t}")
        np.testing.assert_allclose(tokens[:, 0], np.broadcast_to(cls + pos, (2, 17, D)), atol=1e-6)
    else:
        cls_token = to_numpy(backbone.get_layer("class_tokens")(patches))  # (2, 1, d)
        np.testing.assert_allclose(cls_token[:, 0] + table[0, 0], vit_input[:, 0], atol=1e-6)
        body = patches.reshape(2, t_tokens * 16, D) + table[:, 1:]
        for t in range(t_tokens):
            np.testing.assert_allclose(body[:, t * 16 : (t + 1) * 16], vit_input[:, 1:], atol=1e-4)


@cache
def spatial_only_model():
    # ViT's GELU and LayerNorm epsilon; 2-frame tubelets, 6 frames = 3 temporal tokens.
    return build_model(
        "vidtr_tiny",
        num_classes=3,
        attention="spatial",
        mlp_activation="gelu",
        layer_norm_epsilon=1e-6,
        patch_size=(2, 8, 8),
        num_frames=6,
    )


@pytest.mark.parametrize(
    "vit_grid,zero_positions",
    [((4, 4), True), ((4, 4), False), ((6, 6), False)],
    ids=["exact_vit", "vidtr_position_placement", "384px_vit_into_224px_video_style"],
)
def test_spatial_only_inflated_model_runs_the_image_model_on_every_frame(vit_grid, zero_positions):
    model = spatial_only_model()
    sd = timm_state_dict(seed=5, grid=vit_grid)
    if zero_positions:
        sd["pos_embed"] = np.zeros_like(sd["pos_embed"])
    report = vit_convert.inflate(model, sd, tubelet_init="average", num_heads=HEADS)
    assert not any("relu" in n or "epsilon" in n for n in report.notes)
    assert any("resized" in n for n in report.notes) == (vit_grid != (4, 4))
    # The ViT run at the model's 4 x 4 grid: patch positions resized with an independent interpolation.
    pos = sd["pos_embed"][0].astype("float64")
    patch_pos = pos[1:].reshape(vit_grid + (D,))
    patch_pos = np.einsum(
        "ih,jw,hwd->ijd", oracle.interpolation_1d(4, vit_grid[0]), oracle.interpolation_1d(4, vit_grid[1]), patch_pos
    )
    pos = np.concatenate([pos[:1], patch_pos.reshape(16, D)])

    rng = np.random.default_rng(13)
    images = rng.normal(size=(2, 3, 32, 32, 3)).astype("float32")  # 3 different images per clip
    clip = np.repeat(images, 2, axis=1)  # each image fills one 2-frame tubelet
    features = to_numpy(model.backbone(clip))
    # With zero positions the reference is the plain ViT; otherwise the ViT with VidTr's placement of
    # the position embedding (on the normalised input of layer 0 instead of the residual stream).
    per_frame = np.stack(
        [vit_tokens(sd, images[:, t], pos=pos, pos_on_first_norm=not zero_positions)[:, 0] for t in range(3)],
        axis=1,
    )
    np.testing.assert_allclose(features, per_frame.mean(axis=1), atol=2e-4)
    same = np.repeat(images[:, :1], 6, axis=1)
    np.testing.assert_allclose(to_numpy(model.backbone(same)), per_frame[:, 0], atol=2e-4)
    if not zero_positions:  # the placement matters: the plain ViT differs
        plain = vit_tokens(sd, images[:, 0], pos=pos)[:, 0]
        assert np.abs(plain - per_frame[:, 0]).max() > 1e-2


# === Properties of the pieces (hypothesis) ===


@given(
    t=st.integers(1, 4),
    ph=st.integers(1, 3),
    pw=st.integers(1, 3),
    c=st.integers(1, 3),
    d=st.integers(1, 5),
    frames=st.integers(1, 2),
    init=st.sampled_from(["central", "average"]),
    seed=seeds,
)
def test_tubelet_kernel_keeps_image_features_on_identical_frames(t, ph, pw, c, d, frames, init, seed):
    rng = np.random.default_rng(seed)
    image_kernel = rng.normal(size=(ph, pw, c, d)).astype("float32")
    kernel = vit_convert.inflate_patch_kernel(image_kernel, t, init)
    assert kernel.shape == (t, ph, pw, c, d)
    np.testing.assert_allclose(kernel.sum(axis=0), image_kernel, rtol=1e-5, atol=1e-6)
    nonzero = [f for f in range(t) if np.any(kernel[f])]
    assert nonzero == ([t // 2] if init == "central" else list(range(t))) or not np.any(image_kernel)
    layer = TubeletEmbedding(d, patch_size=(t, ph, pw))
    layer.build((None, frames * t, 2 * ph, 2 * pw, c))
    layer.projection.kernel.assign(kernel)
    image = rng.normal(size=(1, 2 * ph, 2 * pw, c)).astype("float32")
    out = to_numpy(run_compiled(layer, np.repeat(image[:, None], frames * t, axis=1)))
    want = np.einsum("bHhWwc,hwcd->bHWd", image.reshape(1, 2, ph, 2, pw, c), image_kernel)
    for f in range(frames):
        np.testing.assert_allclose(out[:, f], want, atol=1e-4)


@given(
    layout=st.sampled_from(["grid", "single"]),
    t=st.integers(1, 4),
    gh=st.integers(1, 3),
    gw=st.integers(1, 3),
    seed=seeds,
)
def test_position_table_gives_each_frame_the_image_positions(layout, t, gh, gw, seed):
    d = 3
    pos = np.random.default_rng(seed).normal(size=(1 + gh * gw, d)).astype("float32")
    layer = PositionEmbedding(layout, t, (gh, gw))
    layer.build((None, t, gh, gw, d))
    layer.embeddings.assign(vit_convert.inflate_position_embedding(pos, layout, t))
    out = to_numpy(run_compiled(layer, np.zeros((1, t, gh, gw, d), "float32")))[0]
    if layout == "grid":  # (t + 1, S + 1, d): every row, the class-token row too, is the ViT's table
        assert out.shape == (t + 1, gh * gw + 1, d)
        np.testing.assert_array_equal(out, np.broadcast_to(pos, out.shape))
    else:
        np.testing.assert_array_equal(out[0], pos[0])
        np.testing.assert_array_equal(out[1:].reshape(t, gh * gw, d), np.broadcast_to(pos[1:], (t, gh * gw, d)))


@given(gh=st.integers(1, 6), gw=st.integers(1, 6), nh=st.integers(1, 6), nw=st.integers(1, 6), seed=seeds)
def test_position_resize_matches_an_independent_interpolation(gh, gw, nh, nw, seed):
    pos = np.random.default_rng(seed).normal(size=(1 + gh * gw, 4)).astype("float32")
    got = vit_convert.resize_position_embedding(pos, (gh, gw), (nh, nw))
    body = np.einsum(
        "ih,jw,hwd->ijd",
        oracle.interpolation_1d(nh, gh),
        oracle.interpolation_1d(nw, gw),
        pos[1:].reshape(gh, gw, 4).astype("float64"),
    )
    np.testing.assert_allclose(got, np.concatenate([pos[:1], body.reshape(-1, 4)]), atol=1e-5)
    if (gh, gw) == (nh, nw):
        np.testing.assert_array_equal(got, pos)


MISMATCHES = {
    "width": ({"d": 48}, "width \\(hidden_dim\\): ViT 48 vs model 32"),
    "depth": ({"layers": 2}, "depth \\(num_layers\\): ViT 2 vs model 3"),
    "mlp": ({"mlp": 96}, "MLP size \\(mlp_dim\\): ViT 96 vs model 64"),
    "patch": ({"patch": (16, 16), "grid": (2, 2)}, "patch size \\(h, w\\): ViT \\(16, 16\\) vs model \\(8, 8\\)"),
    "channels": ({"channels": 1}, "input channels: ViT 1 vs model 3"),
    "heads": ({}, "heads \\(num_heads\\): ViT 8 vs model 4"),
}


@given(
    kinds=st.lists(st.sampled_from(sorted(MISMATCHES)), min_size=1, max_size=3, unique=True),
    fmt=st.sampled_from(["timm", "jax"]),
)
def test_mismatched_sizes_are_clear_errors_and_change_nothing(kinds, fmt):
    model, _, _, _ = inflated("vidtr")
    weights = weights_by_path(model)
    kwargs = {}
    for kind in kinds:
        kwargs.update(MISMATCHES[kind][0])
    sd = timm_state_dict(seed=3, **kwargs)
    heads = 8 if "heads" in kinds else HEADS
    source = jax_arrays(sd, heads=heads) if fmt == "jax" else sd
    with pytest.raises(ValueError, match="does not fit the model 'vidtr_tiny'") as err:
        vit_convert.inflate(model, source, num_heads=heads if fmt == "timm" else None)
    for kind in kinds:
        assert err.match(MISMATCHES[kind][1])
    for path, value in weights_by_path(model).items():
        np.testing.assert_array_equal(value, weights[path], err_msg=path)


# === Command line ===


def test_cli_inflate_writes_a_loadable_inflated_model(tmp_path):
    parser = argparse.ArgumentParser(prog="vidtr")
    cli_convert.register(parser.add_subparsers(dest="command", required=True))  # `convert` and `inflate`
    sd = timm_state_dict(seed=len("vidtr"))  # the ViT of the cached "vidtr" variant
    vit_file = tmp_path / "ViT-tiny.npz"
    np.savez(vit_file, **jax_arrays(sd))
    out = tmp_path / "vidtr_tiny_vit.keras"
    args = parser.parse_args(
        [
            "inflate",
            str(vit_file),
            "--preset",
            "vidtr_tiny",
            "--num-classes",
            "4",
            "--tubelet-init",
            "average",
            "--output",
            str(out),
        ]
    )
    assert args.func(args) == 0
    loaded = keras.saving.load_model(str(out))
    want = weights_by_path(inflated("vidtr")[0])
    got = weights_by_path(loaded)
    assert got["head/kernel"].shape == (D, 4)
    for path in want:
        if not path.startswith("head/"):
            np.testing.assert_array_equal(got[path], want[path], err_msg=path)

    args = parser.parse_args(
        [
            "inflate",
            str(vit_file),
            "--preset",
            "vidtr_tiny",
            "--num-classes",
            "4",
            "--num-heads",
            "4",
            "--output",
            str(tmp_path / "w.weights.h5"),
        ]
    )
    assert args.func(args) == 0
    loaded.load_weights(str(tmp_path / "w.weights.h5"))
    np.testing.assert_array_equal(
        to_numpy(loaded.get_layer("vidtr_tiny_backbone").get_layer("final_norm").gamma), sd["norm.weight"]
    )

    for argv, error in (
        (["--output", str(tmp_path / "model.h5")], ValueError),
        (["--output", str(tmp_path / "m.keras"), "--num-heads", "2"], ValueError),
    ):
        args = parser.parse_args(["inflate", str(vit_file), "--preset", "vidtr_tiny"] + argv)
        with pytest.raises(error):
            args.func(args)
    with pytest.raises(SystemExit):  # argparse rejects an unknown init
        parser.parse_args(
            ["inflate", str(vit_file), "--preset", "vidtr_tiny", "--tubelet-init", "random", "--output", "x.keras"]
        )
