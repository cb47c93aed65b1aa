"""Official VidTr checkpoints (amazon-science/gluonmm, PyTorch) -> Keras models, and back.

Tensor names and layouts are those of the official state dicts (listed per released model in the
official weights' manifest): `conv_stem.weight` (d, C, t, h, w), `encoder.layers.{i}.self_attn.in_proj_weight`
(3d, d), PyTorch `Linear` weights (out, in), ... Checkpoints saved from DistributedDataParallel carry a
`module.` prefix, which is removed.
"""

import json
import os

import numpy as np

from vidtr_keras.convert import io
from vidtr_keras.models.backbone import VidTrBackbone
from vidtr_keras.models.classifier import VidTrClassifier
from vidtr_keras.models.config import BackboneConfig
from vidtr_keras.models.presets import PRESETS, official_presets

OFFICIAL_CLASSES = ("VidTr", "CompactVidTr")


def official_config(config, num_classes=400):
    """The official constructor arguments (plus `cls`) of a backbone config: the inverse of
    `backbone_config` for the configurations the official code can express.

    Args:
        config: `VidTrBackbone` arguments (a dict, e.g. a preset's "config") or a `BackboneConfig`.
        num_classes: the classifier width (`activity_num`).
    """
    c = config if isinstance(config, BackboneConfig) else BackboneConfig(**config)
    out = {
        "d_model": c.hidden_dim,
        "nhead": c.num_heads,
        "num_encoder_layers": c.num_layers,
        "dim_feedforward": c.mlp_dim,
        "patch_size": list(c.patch_size),
        "normalize_before": True,
        "activity_num": int(num_classes),
        "dropout": c.dropout,
        "temporal_size": c.num_frames,
    }
    if c.pool_layers:
        return {
            "cls": "CompactVidTr",
            **out,
            "layer_pool": list(c.pool_layers),
            "number_of_keys": list(c.frames_dropped),
        }
    if c.attention == "joint":
        return {"cls": "VidTr", **out, "merge_later": True, "merge_index": -1}
    if c.attention != "temporal_spatial" or c.class_token_layout != "grid":
        raise ValueError(
            f"attention={c.attention!r} with class_token_layout={c.class_token_layout!r} has no official "
            "constructor (the official code has the vanilla, VidTr and C-VidTr models only)."
        )
    # merge_index is unused when merge_later is False; the released configs carry 6.
    return {"cls": "VidTr", **out, "merge_later": False, "merge_index": 6}


# The constructor arguments of the released full-size models, from the presets that carry their names.
RELEASED_CONFIGS = {
    PRESETS[preset]["official_name"]: official_config(PRESETS[preset]["config"], PRESETS[preset]["num_classes"])
    for preset in official_presets().values()
}


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: lists missing, unexpected and mis-shaped tensors."""

    def __init__(self, missing=(), unexpected=(), mismatched=(), context=""):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        parts = [f"Checkpoint does not match the model{(' (' + context + ')') if context else ''}:"]
        if self.missing:
            parts.append(f"  missing tensors ({len(self.missing)}): {_listing(self.missing)}")
        if self.unexpected:
            parts.append(f"  unexpected tensors ({len(self.unexpected)}): {_listing(self.unexpected)}")
        if self.mismatched:
            rows = [f"{n}: checkpoint {tuple(a)} vs model {tuple(b)}" for n, a, b in self.mismatched]
            parts.append(f"  mis-shaped tensors ({len(rows)}): {_listing(rows)}")
        super().__init__("\n".join(parts))


def _listing(items, limit=20):
    items = list(items)
    text = ", ".join(items[:limit])
    return text + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def strip_prefix(state_dict):
    """Unwraps a training checkpoint ({'model': state_dict, ...}), removes DistributedDataParallel's
    `module.` prefix and converts tensors to float32 numpy arrays."""
    return io.arrays_of(io.unwrap_state_dict(state_dict, "official checkpoint"))


def _class_of(config):
    cls = config.get("cls", config.get("constructor"))
    if cls is None:
        raise ValueError(f"The official config must name its class ('cls': one of {OFFICIAL_CLASSES}).")
    if cls not in OFFICIAL_CLASSES:
        raise ValueError(f"Unknown official class {cls!r}; expected one of {OFFICIAL_CLASSES}.")
    return cls


def backbone_config(config, state_dict=None, image_size=None):
    """`VidTrBackbone` arguments for an official constructor config.

    The patch grid is read from the checkpoint's position embedding when `image_size` is not given
    (so any grid works, not only the official 14 x 14).
    """
    config = dict(config)
    if isinstance(config.get("kwargs"), dict):  # a manifest entry
        config = {"cls": config.get("constructor"), **config["kwargs"]}
    cls = _class_of(config)
    required = ("d_model", "nhead", "num_encoder_layers", "dim_feedforward", "patch_size", "temporal_size")
    absent = [k for k in required if k not in config]
    if absent:
        raise ValueError(f"The official config lacks {absent}.")
    if not config.get("normalize_before", True):
        raise ValueError("Only normalize_before=True (pre-LN) official models exist and are supported.")
    patch = tuple(int(p) for p in config["patch_size"])
    frames = int(config["temporal_size"])
    token_frames = frames // patch[0]
    out = {
        "num_frames": frames,
        "patch_size": patch,
        "hidden_dim": int(config["d_model"]),
        "num_heads": int(config["nhead"]),
        "num_layers": int(config["num_encoder_layers"]),
        "mlp_dim": int(config["dim_feedforward"]),
        "dropout": float(config.get("dropout", 0.1)),
        "attention_dropout": float(config.get("dropout", 0.1)),
        "mlp_activation": "relu",
        "layer_norm_epsilon": 1e-5,
    }
    if cls == "VidTr":
        merge_later = bool(config.get("merge_later", False))
        merge_index = int(config.get("merge_index", -1))
        if merge_later and merge_index != -1:
            raise ValueError(
                f"merge_later=True with merge_index={merge_index} (separable then joint layers) is not "
                "a released configuration and is not supported; merge_index=-1 is the vanilla model."
            )
        out["attention"] = "joint" if merge_later else "temporal_spatial"
        out["class_token_layout"] = "single" if merge_later else "grid"
        # Official quirk: the position embedding is added in every layer exactly when temporal_size == 16.
        out["position_embedding_every_layer"] = frames == 16
    else:
        out["attention"] = "temporal_spatial"
        out["class_token_layout"] = "single"
        out["pool_layers"] = tuple(int(i) for i in config.get("layer_pool", ()))
        out["frames_dropped"] = tuple(int(k) for k in config.get("number_of_keys", ()))
    if image_size is None:
        if state_dict is None or "pos_embedding" not in state_dict:
            image_size = (14 * patch[1], 14 * patch[2])
        else:
            n = int(np.shape(state_dict["pos_embedding"])[1])
            if out["class_token_layout"] == "grid":
                s = n // (token_frames + 1) - 1
            else:
                s = (n - 1) // token_frames
            what = (
                f"pos_embedding of shape {tuple(np.shape(state_dict['pos_embedding']))} does not fit the "
                f"official {cls} config (temporal_size={frames}, {out['class_token_layout']} class-token "
                f"layout; is the checkpoint for another model?)"
            )
            side = io.grid_side(s if s > 0 else -1, what + "; pass image_size=(h, w)")
            image_size = (side * patch[1], side * patch[2])
    out["image_size"] = image_size
    return out


def _transpose(a):
    return np.ascontiguousarray(np.transpose(a))


def _conv_kernel(a):  # (d, C, t, h, w) -> (t, h, w, C, d)
    return np.ascontiguousarray(np.transpose(a, (2, 3, 4, 1, 0)))


def _conv_kernel_back(a):  # (t, h, w, C, d) -> (d, C, t, h, w)
    return np.ascontiguousarray(np.transpose(a, (4, 3, 0, 1, 2)))


def weight_map(model):
    """[(official name, keras variable, to_keras, to_official)] for a `VidTrClassifier`."""
    backbone = model.backbone if isinstance(model, VidTrClassifier) else model
    same = (lambda a: a, lambda a: a)
    lin = (_transpose, _transpose)
    rows = []

    def add(name, variable, fns):
        rows.append((name, variable, fns[0], fns[1]))

    emb = backbone.get_layer("patch_embedding").projection
    add("conv_stem.weight", emb.kernel, (_conv_kernel, _conv_kernel_back))
    add("conv_stem.bias", emb.bias, same)
    add("pos_embedding", backbone.get_layer("position_embedding").embeddings, same)
    tokens = backbone.get_layer("class_tokens")
    if tokens.layout == "grid":
        add("cls_t", tokens.temporal_class_tokens, same)
        add("cls_s", tokens.spatial_class_tokens, same)
    else:
        add("cls", tokens.class_token, same)
    for i in range(backbone.num_layers):
        block = backbone.get_layer(f"encoder_block_{i}")
        p = f"encoder.layers.{i}."
        attn = block.attn
        add(p + "self_attn.in_proj_weight", attn.in_proj_kernel, lin)
        add(p + "self_attn.in_proj_bias", attn.in_proj_bias, same)
        add(p + "self_attn.out_proj.weight", attn.out_proj_kernel, lin)
        add(p + "self_attn.out_proj.bias", attn.out_proj_bias, same)
        add(p + "linear1.weight", block.mlp_dense1.kernel, lin)
        add(p + "linear1.bias", block.mlp_dense1.bias, same)
        add(p + "linear2.weight", block.mlp_dense2.kernel, lin)
        add(p + "linear2.bias", block.mlp_dense2.bias, same)
        for n in ("norm1", "norm2"):
            norm = getattr(block, n)
            add(p + n + ".weight", norm.gamma, same)
            add(p + n + ".bias", norm.beta, same)
        if block.token_pooling is not None and hasattr(block.token_pooling, "conv"):
            raise ValueError("Convolutional temporal pooling has no official checkpoint layout.")
    norm = backbone.get_layer("final_norm")
    add("encoder.norm.weight", norm.gamma, same)
    add("encoder.norm.bias", norm.beta, same)
    if isinstance(model, VidTrClassifier):
        head = model.get_layer("head")
        add("fc.weight", head.kernel, lin)
        add("fc.bias", head.bias, same)
    return rows


def load_state_dict(model, state_dict, context=""):
    """Copies an official state dict into `model`; raises CheckpointMismatchError listing every
    missing, unexpected and mis-shaped tensor (nothing is assigned unless everything fits)."""
    state_dict = strip_prefix(state_dict)
    rows = weight_map(model)
    expected = {name for name, *_ in rows}
    missing = sorted(expected - set(state_dict))
    unexpected = sorted(set(state_dict) - expected)
    mismatched, values = [], []
    for name, variable, to_keras, _ in rows:
        if name not in state_dict:
            continue
        value = to_keras(state_dict[name])
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append((name, np.shape(state_dict[name]), to_keras_shape_inverse(variable, rows, name)))
            continue
        values.append((variable, value))
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(missing, unexpected, mismatched, context)
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))
    return model


def to_keras_shape_inverse(variable, rows, name):
    """The shape the official tensor `name` should have for `variable` (for error messages)."""
    for row_name, _, _, to_official in rows:
        if row_name == name:
            return to_official(np.zeros(variable.shape, dtype="float32")).shape
    return tuple(variable.shape)


def to_state_dict(model):
    """The model's weights under official names and layouts (numpy arrays)."""
    return {name: to_official(np.asarray(variable)) for name, variable, _, to_official in weight_map(model)}


def from_state_dict(state_dict, config, image_size=None, head_dropout=0.5, name=None):
    """A `VidTrClassifier` holding an official checkpoint's weights.

    Args:
        state_dict: official tensor names (with or without `module.`) -> arrays.
        config: the official constructor arguments (keys `cls`, `d_model`, `nhead`,
            `num_encoder_layers`, `dim_feedforward`, `patch_size`, `activity_num`, `temporal_size`,
            `merge_later`, `merge_index`, `layer_pool`, `number_of_keys`), a JSON string of them,
            or the name of a released model (see `RELEASED_CONFIGS`).
        image_size: frame size the model was trained at; read from the position embedding if None.
    """
    if isinstance(config, str):
        config = RELEASED_CONFIGS[config] if config in RELEASED_CONFIGS else json.loads(config)
    state_dict = strip_prefix(state_dict)
    kwargs = backbone_config(config, state_dict, image_size)
    if "activity_num" in config:
        num_classes = int(config["activity_num"])
    elif "fc.weight" in state_dict:
        num_classes = int(state_dict["fc.weight"].shape[0])
    else:
        raise ValueError("The config has no activity_num and the checkpoint no fc.weight.")
    backbone = VidTrBackbone(**kwargs, name=f"{name or 'vidtr'}_backbone")
    model = VidTrClassifier(backbone, num_classes, dropout=head_dropout, name=name or "vidtr")
    return load_state_dict(model, state_dict, context=f"official {_class_of(config)} config")


def load_checkpoint(path):
    """Reads an official checkpoint into a numpy state dict (see `vidtr_keras.convert.io`).

    `.pth`/`.pt` (PyTorch, imported lazily): a trained checkpoint {'model': state_dict, 'epoch': ...}
    or a bare state dict; `.safetensors`; `.npz`: arrays by name (the `sd/` layout of the test
    fixtures keeps only those tensors). The `module.` prefix is removed.
    """
    return io.read_state_dict(path, "checkpoint")


def is_checkpoint_file(path):
    """True for a file name this converter reads (`load_checkpoint`): `.pth`, `.pt`, `.bin`, `.safetensors`, `.npz`."""
    return os.fspath(path).endswith(io.SUFFIXES)


def checkpoint_config(path, config=None):
    """The official constructor arguments of the checkpoint file at `path`.

    Args:
        path: an official checkpoint (see `load_checkpoint`).
        config: the arguments (a dict, a JSON string or a released model's name); found otherwise
            in the file itself (the `config_json` entry of the official-output `.npz` fixtures) or from
            a file named after a released model, e.g. `vidtr_s_8x8_patch16_224_k400.pth`.

    Raises:
        ValueError: none of these gives a configuration.
    """
    if config is not None:
        if isinstance(config, str):
            return RELEASED_CONFIGS[config] if config in RELEASED_CONFIGS else json.loads(config)
        return dict(config)
    path = os.fspath(path)
    if path.endswith(".npz") and "config_json" in io.npz_names(path):
        with np.load(path) as data:
            return json.loads(str(data["config_json"]))
    stem = os.path.basename(path).split(".")[0]
    if stem in RELEASED_CONFIGS:
        return RELEASED_CONFIGS[stem]
    raise ValueError(
        f"The official configuration of {path!r} is unknown: name the file after a released model "
        f"({', '.join(sorted(RELEASED_CONFIGS))}) or give `config` (a released model's name, JSON or a dict)."
    )


def from_checkpoint(path, config=None, image_size=None):
    """A `VidTrClassifier` from an official checkpoint file, converted on the fly.

    Args:
        path: the checkpoint (`.pth`/`.pt`/`.bin` need torch; `.safetensors`, `.npz`).
        config: its official constructor arguments, when `checkpoint_config` cannot find them.
        image_size: frame size the model was trained at; read from the position embedding if None.
    """
    config = checkpoint_config(path, config)
    return from_state_dict(load_checkpoint(path), config, image_size=image_size)
