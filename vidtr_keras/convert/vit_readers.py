"""ImageNet ViT checkpoints -> `ViTWeights`, one canonical in-memory description of a ViT image encoder.

Readers, each a table from the canonical names (`CANONICAL_LAYOUT`, Keras layouts) to the source's
tensor names and the transform that changes the layout:
- `from_timm`: a timm / PyTorch state dict (`TIMM_NAMES`) from a `.pth`/`.pt`/`.bin`, `.safetensors`
  or `.npz` file (read by `vidtr_keras.convert.io`) or an in-memory dict;
- `from_jax`: the original JAX/Flax ViT `.npz` (`jax_names()`), with the `opt/target/` prefix of the
  first releases or the `params/` layout of big_vision;
- `from_keras_hub`: a `keras_hub.models.ViTBackbone` (keras-hub is an optional dependency);
- `read_vit`: any of these, dispatching on what it is given.
`vidtr_keras.convert.vit.inflate` copies a `ViTWeights` into a VidTr model.
"""

import dataclasses
import os
from collections.abc import Mapping

import numpy as np
from keras import ops

from vidtr_keras.convert import io, pretrained
from vidtr_keras.convert.vit_weights import (
    CANONICAL_LAYOUT,
    ViTWeights,
    _check_file,
    _read_result,
    apply_table,
)

# === Layout transforms (source layout -> Keras layout) ===


def _same(a):
    return a


def _transpose(a):  # PyTorch Linear (out, in) -> Keras Dense (in, out)
    return np.ascontiguousarray(a.T)


def _conv2d_kernel(a):  # PyTorch Conv2d (d, C, h, w) -> (h, w, C, d)
    if a.ndim != 4:
        raise ValueError(f"the patch kernel must be (d, C, h, w), got {a.shape}")
    return np.transpose(a, (2, 3, 1, 0))


def _flat(a):  # a (1, 1, d) class token -> (d,)
    return a.reshape(-1)


def _rows(a):  # a (1, 1 + S, d) position embedding -> (1 + S, d)
    return a.reshape(a.shape[-2], a.shape[-1])


def _heads_to_columns(*kernels):  # JAX (d, heads, d_head) query, key, value kernels -> (d, 3d) [q | k | v]
    for k in kernels:
        if k.ndim != 3:
            raise ValueError(f"attention kernels must be (d, heads, d_head), got {k.shape}")
    return np.concatenate([k.reshape(k.shape[0], -1) for k in kernels], axis=1)


def _concat_flat(*biases):  # JAX (heads, d_head) biases -> (3d,)
    return np.concatenate([b.reshape(-1) for b in biases])


def _heads_to_rows(a):  # JAX out kernel (heads, d_head, d) -> (d, d)
    return a.reshape(-1, a.shape[-1])


# === timm ===

# canonical name -> (timm tensor name(s), transform). Block names use {i}.
TIMM_NAMES = {
    "patch_embedding/kernel": (("patch_embed.proj.weight",), _conv2d_kernel),
    "patch_embedding/bias": (("patch_embed.proj.bias",), _same),
    "class_token": (("cls_token",), _flat),
    "position_embedding": (("pos_embed",), _rows),
    "block_{i}/norm1/gamma": (("blocks.{i}.norm1.weight",), _same),
    "block_{i}/norm1/beta": (("blocks.{i}.norm1.bias",), _same),
    "block_{i}/attention/qkv_kernel": (("blocks.{i}.attn.qkv.weight",), _transpose),
    "block_{i}/attention/qkv_bias": (("blocks.{i}.attn.qkv.bias",), _same),
    "block_{i}/attention/out_kernel": (("blocks.{i}.attn.proj.weight",), _transpose),
    "block_{i}/attention/out_bias": (("blocks.{i}.attn.proj.bias",), _same),
    "block_{i}/norm2/gamma": (("blocks.{i}.norm2.weight",), _same),
    "block_{i}/norm2/beta": (("blocks.{i}.norm2.bias",), _same),
    "block_{i}/mlp/dense1_kernel": (("blocks.{i}.mlp.fc1.weight",), _transpose),
    "block_{i}/mlp/dense1_bias": (("blocks.{i}.mlp.fc1.bias",), _same),
    "block_{i}/mlp/dense2_kernel": (("blocks.{i}.mlp.fc2.weight",), _transpose),
    "block_{i}/mlp/dense2_bias": (("blocks.{i}.mlp.fc2.bias",), _same),
    "final_norm/gamma": (("norm.weight",), _same),
    "final_norm/beta": (("norm.bias",), _same),
}
# Tensors a timm ViT may lack, and what stands in for them (qkv_bias=False: zeros of width 3d).
_TIMM_OPTIONAL = {"block_{i}/attention/qkv_bias"}
_TIMM_IGNORED = ("head.", "head_dist.", "pre_logits.")


def from_timm(source, num_heads=None, grid_size=None):
    """A timm / PyTorch ViT state dict -> `ViTWeights`.

    Names: `TIMM_NAMES` (timm's `VisionTransformer`: `cls_token` (1, 1, d), `pos_embed` (1, 1 + S, d),
    `patch_embed.proj.weight` (d, C, h, w), `blocks.{i}.attn.qkv.weight` (3d, d), ...); an absent
    `attn.qkv.bias` (qkv_bias=False) reads as zeros; `head.*` is ignored. A `module.` prefix and a
    {'model': state_dict} wrapper are removed. Tensors of ViT variants this reader does not know
    (distillation token, LayerScale, ...) are an error rather than silently dropped.

    Args:
        source: a `.pth`/`.pt`/`.bin` file (needs torch), a `.safetensors` file (needs safetensors),
            a `.npz` of the same names, or an in-memory dict of arrays or torch tensors.
        num_heads: the ViT's heads; a state dict does not record them, so give them to have them
            checked against the model's.
        grid_size: (h, w) patch grid of the position embedding; inferred (square) when None.
    """
    label = "timm state dict"
    if isinstance(source, (str, os.PathLike)):
        path = _check_file(source)
        label = f"timm state dict {path!r}"
        state = io.read_state_dict(path, "ViT checkpoint")
    elif isinstance(source, Mapping):
        state = io.unwrap_state_dict(source, label)
    else:
        raise TypeError(f"from_timm expects a file path or a state dict, got {type(source).__name__}.")
    arrays, names, used, layers = apply_table(
        TIMM_NAMES,
        state,
        label,
        count_key="blocks.{i}.norm1.weight",
        optional=_TIMM_OPTIONAL,
        hint=" (is this a timm ViT state dict?)",
    )
    d = arrays["patch_embedding/kernel"].shape[-1]
    for i in range(layers):
        name = f"block_{i}/attention/qkv_bias"
        if arrays[name] is None:
            arrays[name] = np.zeros(3 * d, "float32")
            names[name] = "(none: qkv_bias=False, zeros)"
    unexpected = sorted(n for n in set(state) - used if not n.startswith(_TIMM_IGNORED))
    return _read_result(label, unexpected, arrays, arrays["position_embedding"], grid_size, num_heads, names)


# === JAX / Flax ===


def jax_names(big_vision=False):
    """canonical name -> (JAX tensor name(s), transform) for the original ViT release or big_vision."""
    if big_vision:
        attn, ln2, mlp, pos = "MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0", "pos_embedding"
    else:
        attn, ln2, mlp = "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3"
        pos = "Transformer/posembed_input/pos_embedding"
    b = "Transformer/encoderblock_{i}/"
    qkv = tuple(f"{b}{attn}/{part}/" for part in ("query", "key", "value"))
    return {
        "patch_embedding/kernel": (("embedding/kernel",), _same),
        "patch_embedding/bias": (("embedding/bias",), _same),
        "class_token": (("cls",), _flat),
        "position_embedding": ((pos,), _rows),
        "block_{i}/norm1/gamma": ((b + "LayerNorm_0/scale",), _same),
        "block_{i}/norm1/beta": ((b + "LayerNorm_0/bias",), _same),
        "block_{i}/attention/qkv_kernel": (tuple(p + "kernel" for p in qkv), _heads_to_columns),
        "block_{i}/attention/qkv_bias": (tuple(p + "bias" for p in qkv), _concat_flat),
        "block_{i}/attention/out_kernel": ((f"{b}{attn}/out/kernel",), _heads_to_rows),
        "block_{i}/attention/out_bias": ((f"{b}{attn}/out/bias",), _same),
        "block_{i}/norm2/gamma": ((f"{b}{ln2}/scale",), _same),
        "block_{i}/norm2/beta": ((f"{b}{ln2}/bias",), _same),
        "block_{i}/mlp/dense1_kernel": ((f"{b}{mlp}/Dense_0/kernel",), _same),
        "block_{i}/mlp/dense1_bias": ((f"{b}{mlp}/Dense_0/bias",), _same),
        "block_{i}/mlp/dense2_kernel": ((f"{b}{mlp}/Dense_1/kernel",), _same),
        "block_{i}/mlp/dense2_bias": ((f"{b}{mlp}/Dense_1/bias",), _same),
        "final_norm/gamma": (("Transformer/encoder_norm/scale",), _same),
        "final_norm/beta": (("Transformer/encoder_norm/bias",), _same),
    }


def _jax_prefix(keys):
    for key in keys:
        if key.endswith("embedding/kernel") and "Transformer/" not in key:
            return key[: -len("embedding/kernel")]
    raise ValueError(
        "No `embedding/kernel` tensor: not a JAX/Flax ViT checkpoint (expected names like `cls`, "
        "`embedding/kernel`, `Transformer/encoderblock_0/...`)."
    )


def from_jax(source, grid_size=None):
    """The original JAX/Flax ViT `.npz` (google-research/vision_transformer) -> `ViTWeights`.

    Names: `jax_names()` (`cls` (1, 1, d), `embedding/kernel` (h, w, C, d),
    `Transformer/posembed_input/pos_embedding` (1, 1 + S, d),
    `Transformer/encoderblock_{i}/MultiHeadDotProductAttention_1/query|key|value/kernel`
    (d, heads, d_head), `.../out/kernel` (heads, d_head, d), `.../MlpBlock_3/Dense_0|1`, ...);
    `head/*` and `pre_logits/*` are ignored. The first releases prefix every name with `opt/target/`;
    big_vision checkpoints (prefix `params/`) number the block's modules MultiHeadDotProductAttention_0,
    LayerNorm_0/LayerNorm_1, MlpBlock_0 and keep `pos_embedding` at the top level. The number of heads
    is read from the query kernel.

    Args:
        source: a `.npz` file or an in-memory dict of those names.
        grid_size: (h, w) patch grid of the position embedding; inferred (square) when None.
    """
    label = "JAX ViT"
    if isinstance(source, (str, os.PathLike)):
        path = _check_file(source)
        label = f"JAX ViT {path!r}"
        state = io.read_state_dict(path, "ViT checkpoint")
    elif isinstance(source, Mapping):
        state = dict(source)
    else:
        raise TypeError(f"from_jax expects an .npz path or a dict of arrays, got {type(source).__name__}.")
    prefix = _jax_prefix(state)
    if prefix + "cls" not in state:
        raise ValueError(f"{label}: no class token `cls` (a global-average-pooling ViT); VidTr's inflation needs one.")
    big_vision = f"{prefix}Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel" in state
    table = jax_names(big_vision)
    arrays, names, used, _ = apply_table(
        table, state, label, prefix=prefix, count_key="Transformer/encoderblock_{i}/LayerNorm_0/scale"
    )
    query = table["block_{i}/attention/qkv_kernel"][0][0].format(i=0)
    num_heads = int(np.shape(state[prefix + query])[1])
    ignored = tuple(prefix + p for p in ("head/", "pre_logits/"))
    unexpected = sorted(n for n in set(state) - used if n.startswith(prefix) and not n.startswith(ignored))
    return _read_result(label, unexpected, arrays, arrays["position_embedding"], grid_size, num_heads, names)


# === keras-hub ===


def from_keras_hub(backbone):
    """A keras-hub `ViTBackbone` (or the name of one of its presets) -> `ViTWeights`.

    keras-hub is an optional dependency: without it this is an ImportError saying how to install it.
    The ViT must have a class token (`use_class_token=True`); absent biases become zeros.
    """
    try:
        import keras_hub  # lazily: an optional dependency, never needed by the rest of the package
    except ImportError as err:
        raise ImportError(
            "Reading a keras-hub ViTBackbone needs keras-hub, an optional dependency: pip install keras-hub "
            "(or export the ViT's weights as a timm state dict or a JAX .npz)."
        ) from err
    if isinstance(backbone, str):
        backbone = keras_hub.models.ViTBackbone.from_preset(backbone)
    if not isinstance(backbone, keras_hub.models.ViTBackbone):
        raise TypeError(f"from_keras_hub expects a keras_hub.models.ViTBackbone, got {type(backbone).__name__}.")
    return _keras_hub_weights(backbone)


def _keras_hub_weights(backbone):
    """Reads a ViTBackbone by its layer structure (keras-hub's `vit_patching_and_embedding` and
    `vit_encoder` layers); kept apart from `from_keras_hub` so the structure can be tested alone."""
    label = f"keras-hub ViTBackbone {backbone.name!r}"
    emb = backbone.get_layer("vit_patching_and_embedding")
    enc = backbone.get_layer("vit_encoder")
    if not getattr(emb, "use_class_token", True):
        raise ValueError(f"{label}: built with use_class_token=False; VidTr's inflation needs a class token.")
    arrays, names = {}, {}

    def value(variable):
        return np.asarray(ops.convert_to_numpy(variable), dtype="float32")

    def put(name, variable):
        arrays[name] = value(variable)
        names[name] = variable.path

    def put_bias(name, dense, size):
        if getattr(dense, "bias", None) is None:
            arrays[name] = np.zeros(size, "float32")
            names[name] = f"(none: {dense.name} has no bias, zeros)"
        else:
            put(name, dense.bias)
            arrays[name] = arrays[name].reshape(-1)

    conv = emb.patch_embedding
    d = int(conv.kernel.shape[-1])
    put("patch_embedding/kernel", conv.kernel)
    put_bias("patch_embedding/bias", conv, d)
    put("class_token", emb.class_token)
    arrays["class_token"] = arrays["class_token"].reshape(-1)
    put("position_embedding", emb.position_embedding.embeddings)
    for i, block in enumerate(enc.encoder_layers):
        q = f"block_{i}/"
        for norm, layer in (("norm1", block.layer_norm_1), ("norm2", block.layer_norm_2)):
            put(q + norm + "/gamma", layer.gamma)
            put(q + norm + "/beta", layer.beta)
        mha = block.mha
        denses = (mha.query_dense, mha.key_dense, mha.value_dense)
        arrays[q + "attention/qkv_kernel"] = np.concatenate([value(x.kernel).reshape(d, -1) for x in denses], axis=1)
        names[q + "attention/qkv_kernel"] = " + ".join(x.kernel.path for x in denses)
        biases = [
            value(x.bias).reshape(-1) if getattr(x, "bias", None) is not None else np.zeros(d, "float32")
            for x in denses
        ]
        arrays[q + "attention/qkv_bias"] = np.concatenate(biases)
        names[q + "attention/qkv_bias"] = " + ".join(
            x.bias.path if getattr(x, "bias", None) is not None else "(zeros)" for x in denses
        )
        out = mha.output_dense
        arrays[q + "attention/out_kernel"] = value(out.kernel).reshape(-1, d)
        names[q + "attention/out_kernel"] = out.kernel.path
        put_bias(q + "attention/out_bias", out, d)
        for j, dense in ((1, block.mlp.dense_1), (2, block.mlp.dense_2)):
            put(q + f"mlp/dense{j}_kernel", dense.kernel)
            put_bias(q + f"mlp/dense{j}_bias", dense, int(dense.kernel.shape[-1]))
    put("final_norm/gamma", enc.layer_norm.gamma)
    put("final_norm/beta", enc.layer_norm.beta)
    ph, pw = (int(s) for s in conv.kernel.shape[:2])
    image = tuple(backbone.image_shape)
    h, w = (image[0], image[1]) if getattr(backbone, "data_format", "channels_last") == "channels_last" else image[1:]
    return ViTWeights(
        arrays,
        grid_size=(int(h) // ph, int(w) // pw),
        num_heads=backbone.num_heads,
        layer_norm_epsilon=getattr(backbone, "layer_norm_epsilon", None),
        source=label,
        source_names=names,
    )


def read_vit(source, num_heads=None, grid_size=None):
    """Any supported ViT source -> `ViTWeights`, dispatching on what it is.

    `ViTWeights` as they are; a keras-hub `ViTBackbone`, the name of a keras-hub preset written
    `keras_hub:NAME` (e.g. `keras_hub:vit_base_patch16_224_imagenet`) or a saved one (`.keras`, also a
    model holding it as `backbone`); a checkpoint shipped in the package, `vidtr_keras:NAME`
    (`vidtr_keras.convert.pretrained`, e.g. `vidtr_keras:tiny_fractal_vit`); a dict (timm names if it has `cls_token` or
    `patch_embed.proj.weight`, JAX names if it has `embedding/kernel`); a file: `.pth`/`.pt`/`.bin`
    (timm, torch), `.safetensors` (timm), `.npz` (JAX names, or timm names).

    Args:
        source: the ViT.
        num_heads: heads of a timm state dict (which does not record them), to check them.
        grid_size: (h, w) patch grid of a non-square position embedding.
    """
    if isinstance(source, ViTWeights):
        if num_heads is not None and source.num_heads is None:
            return dataclasses.replace(source, num_heads=num_heads)
        return _with_heads(source, num_heads)
    if hasattr(source, "get_layer") and type(source).__name__ == "ViTBackbone":
        return from_keras_hub(source)
    if isinstance(source, str) and source.startswith(KERAS_HUB_PREFIX):
        return _with_heads(from_keras_hub(source[len(KERAS_HUB_PREFIX) :]), num_heads)
    if isinstance(source, str) and source.startswith(pretrained.PREFIX):  # a checkpoint shipped in the package
        vit = from_timm(pretrained.path(source), num_heads=pretrained.num_heads(source), grid_size=grid_size)
        return _with_heads(dataclasses.replace(vit, source=source), num_heads)
    if isinstance(source, (str, os.PathLike)) and os.fspath(source).endswith(".keras"):
        return _with_heads(_from_keras_file(os.fspath(source)), num_heads)
    if isinstance(source, (str, os.PathLike)):
        path = _check_file(source)
        if path.endswith(".npz"):
            keys = io.npz_names(path)
            if any(k.endswith("patch_embed.proj.weight") for k in keys):
                return from_timm(path, num_heads=num_heads, grid_size=grid_size)
            return _with_heads(from_jax(path, grid_size=grid_size), num_heads)
        if path.endswith((".pth", ".pt", ".bin", ".safetensors")):
            return from_timm(path, num_heads=num_heads, grid_size=grid_size)
        raise ValueError(
            f"Unknown ViT file type {path!r}: expected .pth/.pt/.bin or .safetensors (timm state dict) "
            "or .npz (JAX/Flax ViT)."
        )
    if isinstance(source, Mapping):
        keys = list(io.unwrap_state_dict(source, "state dict"))
        if any(k in ("cls_token", "patch_embed.proj.weight") for k in keys):
            return from_timm(source, num_heads=num_heads, grid_size=grid_size)
        if any(k.endswith("embedding/kernel") for k in keys):
            return _with_heads(from_jax(source, grid_size=grid_size), num_heads)
        raise ValueError(
            f"Unrecognised ViT state dict (first names: {keys[:5]}): expected timm names (cls_token, "
            "patch_embed.proj.weight, blocks.0...) or JAX names (cls, embedding/kernel, Transformer/...)."
        )
    raise TypeError(
        f"Cannot read a ViT from a {type(source).__name__}: give ViTWeights, a keras-hub ViTBackbone, a "
        "state dict or a .pth/.safetensors/.npz file."
    )


KERAS_HUB_PREFIX = "keras_hub:"


def _from_keras_file(path):
    """A saved keras-hub `ViTBackbone` (or a model holding one as `backbone`) -> `ViTWeights`."""
    try:
        import keras_hub  # noqa: F401 - lazily (optional); registers ViTBackbone for deserialisation
    except ImportError as err:
        raise ImportError(f"Reading the keras-hub model {path!r} needs keras-hub: pip install keras-hub") from err
    import keras

    loaded = keras.saving.load_model(_check_file(path))
    return from_keras_hub(getattr(loaded, "backbone", loaded))


def _with_heads(vit, num_heads):
    if num_heads is not None and vit.num_heads is not None and int(num_heads) != vit.num_heads:
        raise ValueError(f"{vit.source} has {vit.num_heads} heads, but num_heads={num_heads} was given.")
    return vit


__all__ = [
    "CANONICAL_LAYOUT",
    "TIMM_NAMES",
    "ViTWeights",
    "from_jax",
    "from_keras_hub",
    "from_timm",
    "jax_names",
    "read_vit",
]
