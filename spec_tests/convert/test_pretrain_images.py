"""Image pretraining on fractals (`vidtr pretrain-images`) and its checkpoint: the Keras image ViT is timm's
ViT tensor for tensor (against a plain-numpy timm forward), its timm export round-trips through the readers
(.npz and .safetensors, the latter checked against the public layout byte for byte), a tiny pretraining run
writes a checkpoint that `vidtr inflate` reads into a model whose layers hold the ViT's tensors, and the
checkpoint shipped in the package loads and inflates into every tiny preset."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from vidtr_keras.cli import build_parser
from vidtr_keras.cli import main as vidtr
from vidtr_keras.convert import pretrained, vit_export
from vidtr_keras.convert import vit as vit_convert
from vidtr_keras.models import build_model
from vidtr_keras.models.image_vit import build_image_vit
from vidtr_keras.training.pretrain_images import PretrainConfig, learning_rate_schedule, pretrain_images

import oracle
from helpers import to_numpy

TINY = dict(image_size=32, patch_size=8, hidden_dim=32, num_layers=3, num_heads=4, mlp_dim=64)


def randomised_vit(seed=0, num_classes=5):
    """The tiny image ViT with every weight random (not the near-trivial initial LayerNorms and biases)."""
    keras.utils.set_random_seed(seed)
    model = build_image_vit(num_classes, **TINY)
    rng = np.random.default_rng(seed)
    for v in model.weights:
        scale = 0.3 if len(v.shape) > 1 else 0.1
        base = 1.0 if v.path.endswith("gamma") else 0.0
        v.assign(base + rng.normal(0, scale, tuple(v.shape)).astype("float32"))
    return model


def timm_forward(sd, images, heads=4, eps=1e-6):
    """timm's VisionTransformer.forward in numpy (float64) from a timm state dict: logits (B, classes)."""
    w, b = sd["patch_embed.proj.weight"].astype("float64"), sd["patch_embed.proj.bias"]
    d, _, ph, pw = w.shape
    n, h, wd, c = images.shape
    x = np.einsum("bHhWwc,dchw->bHWd", images.astype("float64").reshape(n, h // ph, ph, wd // pw, pw, c), w) + b
    x = np.concatenate([np.broadcast_to(sd["cls_token"][0], (n, 1, d)), x.reshape(n, -1, d)], axis=1)
    x = x + sd["pos_embed"][0]
    i = 0
    while f"blocks.{i}.norm1.weight" in sd:
        p = {k[len(f"blocks.{i}.") :]: v.astype("float64") for k, v in sd.items() if k.startswith(f"blocks.{i}.")}
        y = oracle.layer_norm(x, p["norm1.weight"], p["norm1.bias"], eps)
        qkv = oracle.linear(y, p["attn.qkv.weight"], p["attn.qkv.bias"]).reshape(n, -1, 3, heads, d // heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        probs = oracle.softmax(np.einsum("bqhe,bkhe->bhqk", q, k) / np.sqrt(d // heads))
        x = x + oracle.linear(
            np.einsum("bhqk,bkhe->bqhe", probs, v).reshape(n, -1, d), p["attn.proj.weight"], p["attn.proj.bias"]
        )
        y = oracle.gelu(
            oracle.linear(
                oracle.layer_norm(x, p["norm2.weight"], p["norm2.bias"], eps), p["mlp.fc1.weight"], p["mlp.fc1.bias"]
            )
        )
        x = x + oracle.linear(y, p["mlp.fc2.weight"], p["mlp.fc2.bias"])
        i += 1
    x = oracle.layer_norm(x, sd["norm.weight"], sd["norm.bias"], eps)
    return oracle.linear(x[:, 0], sd["head.weight"], sd["head.bias"])


def timm_of(model):
    head = model.get_layer("head")
    return vit_export.to_timm(vit_export.from_image_vit(model), head=(to_numpy(head.kernel), to_numpy(head.bias)))


def test_the_image_vit_computes_timms_vit_from_its_exported_state_dict():
    model = randomised_vit()
    images = np.random.default_rng(1).normal(0, 1, (2, 32, 32, 3)).astype("float32")
    sd = timm_of(model)
    assert sd["patch_embed.proj.weight"].shape == (32, 3, 8, 8) and sd["pos_embed"].shape == (1, 17, 32)
    assert sd["blocks.2.attn.qkv.weight"].shape == (96, 32) and sd["head.weight"].shape == (5, 32)
    np.testing.assert_allclose(to_numpy(model(images)), timm_forward(sd, images), rtol=1e-4, atol=1e-4)


def read_safetensors_by_hand(path):
    """The public safetensors layout, parsed independently: u64 header size, JSON header, raw data."""
    raw = open(path, "rb").read()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    assert size % 8 == 0
    meta = header.pop("__metadata__", {})
    data, out, end = raw[8 + size :], {}, 0
    for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, stop = entry["data_offsets"]
        assert begin == end and entry["dtype"] == "F32"  # contiguous, no gap or overlap
        out[name] = np.frombuffer(data[begin:stop], "<f4").reshape(entry["shape"])
        end = stop
    assert end == len(data)
    return out, meta


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_the_timm_export_reads_back_exactly(suffix, tmp_path):
    model = randomised_vit(seed=2)
    want = vit_export.from_image_vit(model)
    sd = timm_of(model)
    path = str(tmp_path / f"vit{suffix}")
    if suffix == ".safetensors":  # the package's own writer, whether or not `safetensors` is installed
        vit_export.write_safetensors(path, sd, metadata={"format": "pt"})
        by_hand, meta = read_safetensors_by_hand(path)
        assert meta == {"format": "pt"} and sorted(by_hand) == sorted(sd)
        for name in sd:
            np.testing.assert_array_equal(by_hand[name], sd[name], err_msg=name)
        try:
            import safetensors.numpy  # noqa: F401 - the reader's optional dependency
        except ImportError:
            pytest.skip("safetensors is not installed: the file was checked against the layout, not read by the reader")
    else:
        vit_export.save_timm(path, sd)
    got = vit_convert.read_vit(path, num_heads=4)
    assert got.grid_size == want.grid_size == (4, 4)
    assert sorted(got.arrays) == sorted(want.arrays)
    for name in want.arrays:
        np.testing.assert_array_equal(got.arrays[name], want.arrays[name], err_msg=name)


def test_the_schedule_warms_up_linearly_then_decays_as_a_cosine():
    config = PretrainConfig("x.npz", epochs=4, warmup_epochs=1, lr=1e-3, min_lr=1e-5)
    schedule = learning_rate_schedule(config, steps_per_epoch=10)  # 40 steps, 10 of warm-up
    for step in (0, 5, 10, 25, 40):
        if step <= 10:
            want = 1e-3 * step / 10
        else:
            cosine = 0.5 * (1 + np.cos(np.pi * (step - 10) / 30))
            want = 1e-3 * ((1 - 1e-2) * cosine + 1e-2)  # Keras' alpha: the floor as a fraction of lr
        assert float(to_numpy(schedule(step))) == pytest.approx(want, rel=1e-5, abs=1e-9), step


def assert_layers_hold_the_vit(model, sd):
    """Every spatial tensor of an inflated separable (grid-layout, t = 1) VidTr equals the ViT's, by name."""
    w = {v.path: to_numpy(v) for v in model.weights}
    d = sd["cls_token"].shape[-1]
    kernel = np.transpose(sd["patch_embed.proj.weight"], (2, 3, 1, 0))
    np.testing.assert_array_equal(w["patch_embedding/projection/kernel"][0], kernel)
    np.testing.assert_array_equal(w["patch_embedding/projection/bias"], sd["patch_embed.proj.bias"])
    pos = w["position_embedding/embeddings"].reshape(-1, sd["pos_embed"].shape[1], d)  # rows [class, patches]
    for row in pos:
        np.testing.assert_array_equal(row, sd["pos_embed"][0])
    for name in ("class_tokens/temporal_class_tokens", "class_tokens/spatial_class_tokens"):
        tokens = w[name].reshape(-1, d)
        np.testing.assert_array_equal(tokens, np.broadcast_to(sd["cls_token"].reshape(1, d), tokens.shape))
    for i in range(sum(name.endswith(".norm1.weight") for name in sd)):
        b, t = f"encoder_block_{i}/", f"blocks.{i}."
        pairs = {
            "norm1/gamma": sd[t + "norm1.weight"],
            "norm1/beta": sd[t + "norm1.bias"],
            "attention/in_proj_kernel": sd[t + "attn.qkv.weight"].T,
            "attention/in_proj_bias": sd[t + "attn.qkv.bias"],
            "attention/out_proj_kernel": sd[t + "attn.proj.weight"].T,
            "attention/out_proj_bias": sd[t + "attn.proj.bias"],
            "norm2/gamma": sd[t + "norm2.weight"],
            "norm2/beta": sd[t + "norm2.bias"],
            "mlp_dense1/kernel": sd[t + "mlp.fc1.weight"].T,
            "mlp_dense1/bias": sd[t + "mlp.fc1.bias"],
            "mlp_dense2/kernel": sd[t + "mlp.fc2.weight"].T,
            "mlp_dense2/bias": sd[t + "mlp.fc2.bias"],
        }
        for name, want in pairs.items():
            np.testing.assert_array_equal(w[b + name], want, err_msg=b + name)
    np.testing.assert_array_equal(w["final_norm/gamma"], sd["norm.weight"])
    np.testing.assert_array_equal(w["final_norm/beta"], sd["norm.bias"])


def _state(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def test_pretraining_writes_a_checkpoint_that_vidtr_inflate_reads(tmp_path, capsys):
    out = str(tmp_path / "vit.npz")
    flags = "--classes 3 --images-per-class 4 --val-images-per-class 1 --epochs 1 --warmup-epochs 0 --batch-size 8"
    assert vidtr(["pretrain-images", out, *flags.split(), "--quiet"]) == 0
    record = json.load(open(out + ".json"))
    assert record["config"]["classes"] == 3 and record["config"]["output"] == out
    assert 0 <= record["val_accuracy"] <= 1 and len(record["history"]["loss"]) == 1
    sd = _state(out)
    assert sd["head.weight"].shape == (3, 32)
    inflated = str(tmp_path / "inflated.keras")
    assert vidtr(["inflate", out, "--preset", "vidtr_tiny", "--mlp-activation", "gelu", "--output", inflated]) == 0
    model = keras.saving.load_model(inflated)
    assert model.backbone.mlp_activation == "gelu"
    assert_layers_hold_the_vit(model, sd)


# name -> (its ViT: width, depth, heads, MLP, patch, image size; the overrides of the tiny presets it fits)
SHIPPED = {
    "tiny_fractal_vit": ((32, 3, 4, 64, 8, 32), {}),
    "tiny_fractal_vit_p4": ((32, 2, 4, 64, 4, 16), {"num_layers": 2, "image_size": 16, "patch_size": (1, 4, 4)}),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_checkpoint_loads_and_inflates_into_every_tiny_preset(name):
    sizes, overrides = SHIPPED[name]
    assert sorted(SHIPPED) == pretrained.names()
    path = pretrained.path(name)
    assert os.path.getsize(path) < 2_000_000
    record = pretrained.record(name)
    config = record["config"]
    assert tuple(config[k] for k in ("width", "depth", "heads", "mlp_dim", "patch", "image_size")) == sizes
    assert record["val_accuracy"] > 20 / config["classes"]  # far above chance on held-out images
    vit = vit_convert.read_vit(f"vidtr_keras:{name}")
    assert vit.num_heads == 4 and vit.grid_size == (4, 4) and vit.source == f"vidtr_keras:{name}"
    assert (vit.hidden_dim, vit.num_layers, vit.patch_size) == (sizes[0], sizes[1], (sizes[4], sizes[4]))
    for preset in ("vidtr_tiny", "vanilla_tiny", "cvidtr_tiny"):
        model = build_model(preset, num_classes=3, **overrides)
        report = vit_convert.inflate(model, f"vidtr_keras:{name}")
        assert report.initialised == ["head/kernel", "head/bias"], preset
    model = build_model("vidtr_tiny", num_classes=3, **overrides)
    vit_convert.inflate(model, vit)
    assert_layers_hold_the_vit(model, _state(path))


def test_an_unknown_shipped_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="tiny_fractal_vit"):
        vit_convert.read_vit("vidtr_keras:imagenet_vit")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"output": "vit.pth"}, "output"),
        ({"image_size": 30}, "image_size"),
        ({"heads": 5}, "heads"),
        ({"warmup_epochs": 20}, "warmup_epochs"),
        ({"classes": 1}, "classes"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, match, tmp_path):
    args = {"output": str(tmp_path / "vit.npz"), "classes": 2, "images_per_class": 1, "epochs": 1, "warmup_epochs": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        config = PretrainConfig(**args)
        pretrain_images(config, verbose=0)


def test_every_pretrain_config_field_is_a_flag_with_the_fields_default():
    args = build_parser().parse_args(["pretrain-images", "out.npz"])
    for field in dataclasses.fields(PretrainConfig):
        want = "out.npz" if field.name == "output" else field.default
        assert getattr(args, field.name) == want, field.name
    args = build_parser().parse_args(["pretrain-images", "o.npz", "--width", "48", "--heads", "6", "--threads", "2"])
    assert (args.width, args.heads, args.threads) == (48, 6, 2)


def test_a_bad_setting_on_the_command_line_names_the_flag(tmp_path, capsys):
    assert vidtr(["pretrain-images", str(tmp_path / "vit.npz"), "--image-size", "30"]) == 2
    assert "--image-size" in capsys.readouterr().out
