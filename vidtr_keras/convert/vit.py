"""ImageNet ViT weights -> any VidTr variant ("inflation", PAPER.md section 1: VidTr starts from a ViT-B/16).

Three readers turn a ViT checkpoint into one canonical in-memory description, `ViTWeights` (numpy
arrays under the names of `CANONICAL_LAYOUT`, in Keras layouts):
- `from_timm`: a timm / PyTorch state dict (`cls_token`, `pos_embed`, `patch_embed.proj.weight`,
  `blocks.{i}.attn.qkv.weight`, ...) from a `.pth` file (torch, imported lazily), a `.safetensors`
  file (`safetensors`, imported lazily) or an in-memory dict;
- `from_jax`: the original JAX/Flax ViT `.npz` (`cls`, `embedding/kernel`,
  `Transformer/encoderblock_{i}/MultiHeadDotProductAttention_1/query/kernel`, ...), also with the
  `opt/target/` prefix of the first releases or the `params/` layout of big_vision;
- `from_keras_hub`: a `keras_hub.models.ViTBackbone` (keras-hub is an optional dependency).

`inflate(model, vit)` then copies the description into a `VidTrClassifier` or `VidTrBackbone`:
- patch embedding (h, w, C, d) -> Conv3D kernel (t, h, w, C, d): for square patches (t = 1) as it is;
  for cubic tubelets (t > 1, Table 4a) either "central" (the kernel in frame t // 2, zeros in the others)
  or "average" (kernel / t in every frame). Both make a clip of identical frames give exactly the
  image model's patch features. The bias is copied.
- position embedding (1 + S, d): repeated over the T + 1 rows of the (T+1) x (S+1) token grid (row 0 =
  temporal class tokens, column 0 = spatial class tokens, each column gets the ViT position of its
  patch, column 0 the ViT class position), or over the T frames of the single-class-token sequence
  (class entry = the ViT class position). A ViT trained on another patch grid (e.g. 384 px) has its
  patch positions resized linearly (half-pixel centres, `interpolation_matrix`) to the model's grid.
- the ViT class token is copied into every temporal and spatial class token (or the single one);
- attention (q, k, v -> the (d, 3d) in_proj kernel in that order; out proj), MLP, the LayerNorms of
  every block and the final LayerNorm as they are. The classifier head (and the learned convolution of
  the Table 4d conv-pooling ablation) is left as initialised.
Like the official code, VidTr adds the position embedding to the normalised input of its first layer
(ViT: to the input tokens), uses ReLU in the MLP by default (ViT: GELU) and LayerNorm epsilon 1e-5 (ViT:
1e-6); the report notes these. With `attention="spatial"`, `mlp_activation="gelu"` and
`layer_norm_epsilon=1e-6` an inflated model runs every frame through the image model with only the first
of these differences (spec_tests/test_vit_inflation.py checks it).

Example:
>>> model = vidtr_keras.build_model("vidtr_s", num_classes=400)
>>> report = inflate(model, "B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz")
>>> print(report.summary())
"""

import dataclasses
import math
import os
from collections.abc import Mapping

import numpy as np
from keras import ops

from vidtr_keras.layers._utils import interpolation_matrix
from vidtr_keras.models.backbone import VidTrBackbone
from vidtr_keras.models.classifier import VidTrClassifier

TUBELET_INITS = ("central", "average")

# The canonical description: name -> layout (d = width, S = patches, C = channels, L = MLP width).
CANONICAL_LAYOUT = {
    "patch_embedding/kernel": "(h, w, C, d)",
    "patch_embedding/bias": "(d,)",
    "class_token": "(d,)",
    "position_embedding": "(1 + S, d), row 0 = the class token's",
    "block_{i}/norm1/gamma": "(d,)",
    "block_{i}/norm1/beta": "(d,)",
    "block_{i}/attention/qkv_kernel": "(d, 3d), columns [q | k | v], heads contiguous in each",
    "block_{i}/attention/qkv_bias": "(3d,)",
    "block_{i}/attention/out_kernel": "(d, d)",
    "block_{i}/attention/out_bias": "(d,)",
    "block_{i}/norm2/gamma": "(d,)",
    "block_{i}/norm2/beta": "(d,)",
    "block_{i}/mlp/dense1_kernel": "(d, L)",
    "block_{i}/mlp/dense1_bias": "(L,)",
    "block_{i}/mlp/dense2_kernel": "(L, d)",
    "block_{i}/mlp/dense2_bias": "(d,)",
    "final_norm/gamma": "(d,)",
    "final_norm/beta": "(d,)",
}
_BLOCK_NAMES = tuple(n[len("block_{i}/") :] for n in CANONICAL_LAYOUT if n.startswith("block_{i}/"))
_TOP_NAMES = tuple(n for n in CANONICAL_LAYOUT if not n.startswith("block_{i}/"))


@dataclasses.dataclass
class ViTWeights:
    """A ViT image encoder as numpy arrays under the names of `CANONICAL_LAYOUT`, in Keras layouts.

    Args:
        arrays: canonical name -> array (see `CANONICAL_LAYOUT`; blocks `block_0/...` .. `block_{L-1}/...`).
        grid_size: (grid_h, grid_w), the patch grid the position embedding was trained for.
        num_heads: attention heads, or None where the source does not record them (timm state dicts).
        layer_norm_epsilon: the ViT's LayerNorm epsilon where known (1e-6 for timm, JAX and keras-hub ViTs).
        source: what the weights were read from, for reports.
        source_names: canonical name -> the tensor name(s) in the source, for reports.

    The shapes are checked on construction: a tensor of the wrong shape is a ValueError naming it.
    """

    arrays: dict
    grid_size: tuple
    num_heads: int = None
    layer_norm_epsilon: float = None
    source: str = "in-memory ViT"
    source_names: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.arrays = {name: np.asarray(value, dtype="float32") for name, value in self.arrays.items()}
        self.grid_size = tuple(int(g) for g in self.grid_size)
        missing = [n for n in _TOP_NAMES if n not in self.arrays]
        missing += [f"block_0/{n}" for n in _BLOCK_NAMES if f"block_0/{n}" not in self.arrays]
        if missing:
            raise ValueError(f"{self.source}: the ViT description lacks {missing}.")
        kernel_shape = self.arrays["patch_embedding/kernel"].shape
        if len(kernel_shape) != 4:
            raise ValueError(f"{self.source}: the patch kernel must be (h, w, C, d), got {kernel_shape}.")
        d, layers, mlp = self.hidden_dim, self.num_layers, self.mlp_dim
        expected = {
            "patch_embedding/bias": (d,),
            "class_token": (d,),
            "position_embedding": (1 + self.grid_size[0] * self.grid_size[1], d),
            "final_norm/gamma": (d,),
            "final_norm/beta": (d,),
        }
        block_shapes = {
            "norm1/gamma": (d,), "norm1/beta": (d,), "norm2/gamma": (d,), "norm2/beta": (d,),
            "attention/qkv_kernel": (d, 3 * d), "attention/qkv_bias": (3 * d,),
            "attention/out_kernel": (d, d), "attention/out_bias": (d,),
            "mlp/dense1_kernel": (d, mlp), "mlp/dense1_bias": (mlp,),
            "mlp/dense2_kernel": (mlp, d), "mlp/dense2_bias": (d,),
        }
        for i in range(layers):
            expected.update({f"block_{i}/{n}": s for n, s in block_shapes.items()})
        problems = []
        for name, shape in expected.items():
            if name not in self.arrays:
                problems.append(f"{name} missing")
            elif self.arrays[name].shape != shape:
                where = f" ({self.source_names[name]})" if name in self.source_names else ""
                problems.append(f"{name}{where}: {self.arrays[name].shape}, expected {shape}")
        unknown = sorted(set(self.arrays) - set(expected) - {"patch_embedding/kernel"})
        if unknown:
            problems.append(f"unknown names {unknown}")
        if problems:
            raise ValueError(
                f"{self.source}: inconsistent ViT weights (width {d}, {layers} blocks, MLP {mlp}, "
                f"grid {self.grid_size}): " + "; ".join(problems)
            )
        if self.num_heads is not None:
            self.num_heads = int(self.num_heads)
            if self.num_heads <= 0 or d % self.num_heads:
                raise ValueError(f"{self.source}: num_heads={self.num_heads} does not divide the width {d}.")

    @property
    def hidden_dim(self):
        return int(self.arrays["patch_embedding/kernel"].shape[-1])

    @property
    def num_layers(self):
        return sum(1 for n in self.arrays if n.endswith("/norm1/gamma"))

    @property
    def mlp_dim(self):
        return int(self.arrays["block_0/mlp/dense1_kernel"].shape[-1])

    @property
    def patch_size(self):
        return tuple(int(s) for s in self.arrays["patch_embedding/kernel"].shape[:2])

    @property
    def num_channels(self):
        return int(self.arrays["patch_embedding/kernel"].shape[2])

    @property
    def image_size(self):
        return (self.grid_size[0] * self.patch_size[0], self.grid_size[1] * self.patch_size[1])


def _grid_from_positions(num_positions, grid_size, source):
    """The patch grid of a (1 + S)-row position embedding; square unless `grid_size` says otherwise."""
    patches = int(num_positions) - 1
    if grid_size is not None:
        grid_size = tuple(int(g) for g in grid_size)
        if grid_size[0] * grid_size[1] != patches:
            raise ValueError(
                f"{source}: grid_size={grid_size} has {grid_size[0] * grid_size[1]} patches but the position "
                f"embedding has {num_positions} rows (1 class position + {patches} patches)."
            )
        return grid_size
    side = int(round(math.sqrt(max(patches, 0))))
    if patches <= 0 or side * side != patches:
        raise ValueError(
            f"{source}: the position embedding has {num_positions} rows, not 1 class position + a square "
            "grid of patches; pass grid_size=(h, w) (a ViT without class position is not supported)."
        )
    return (side, side)


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch tensor (possibly bfloat16 or requiring grad)
        return value.detach().cpu().float().numpy()
    return np.asarray(value, dtype="float32")


def _unwrap_state_dict(obj, source):
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict", "model_state"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{source} holds no state dict (found {type(obj).__name__}).")
    out = {}
    for name, value in obj.items():
        if name.startswith("module."):
            name = name[len("module.") :]
        out[name] = value
    return out


def _load_torch(path):
    try:
        import torch  # lazily: only .pth files need torch, and the other backends do not install it
    except ImportError as err:
        raise ImportError(
            f"Reading the PyTorch file {path!r} needs torch: pip install 'vidtr-keras[torch]' "
            "(or save the state dict as .safetensors or .npz where torch is installed)."
        ) from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - report any unreadable file the same way
        raise ValueError(f"Could not read {path!r} as a PyTorch checkpoint: {err}") from err
    return obj


def _load_safetensors(path):
    try:
        from safetensors.numpy import load_file  # lazily: an optional dependency
    except ImportError as err:
        raise ImportError(
            f"Reading the safetensors file {path!r} needs the safetensors package: pip install safetensors "
            "(or convert the file to .npz where it is installed)."
        ) from err
    return load_file(path)


def _check_file(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"No ViT checkpoint at {path!r}.")


_TIMM_IGNORED = ("head.", "head_dist.", "pre_logits.")


def _read_result(label, unexpected, arrays, pos, grid_size, num_heads, names):
    """The `ViTWeights` a reader found, or an error listing the tensors it could not place."""
    if unexpected:
        raise ValueError(
            f"{label}: tensors this reader does not understand (a ViT variant with extra parts?): "
            + ", ".join(unexpected[:20]) + (f", ... and {len(unexpected) - 20} more" if len(unexpected) > 20 else "")
        )
    return ViTWeights(
        arrays,
        grid_size=_grid_from_positions(pos.shape[0], grid_size, label),
        num_heads=num_heads,
        layer_norm_epsilon=1e-6,
        source=label,
        source_names=names,
    )


def from_timm(source, num_heads=None, grid_size=None):
    """A timm / PyTorch ViT state dict -> `ViTWeights`.

    Names (timm's `VisionTransformer`): `cls_token` (1, 1, d), `pos_embed` (1, 1 + S, d),
    `patch_embed.proj.weight` (d, C, h, w) and `.bias`, `blocks.{i}.norm1.weight/bias`,
    `blocks.{i}.attn.qkv.weight` (3d, d) and `.bias` (absent with qkv_bias=False: zeros),
    `blocks.{i}.attn.proj.weight/bias`, `blocks.{i}.norm2.*`, `blocks.{i}.mlp.fc1.weight/bias`,
    `blocks.{i}.mlp.fc2.weight/bias`, `norm.weight/bias`; `head.*` is ignored. A `module.` prefix and a
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
        path = os.fspath(source)
        _check_file(path)
        label = f"timm state dict {path!r}"
        if path.endswith(".safetensors"):
            state = _load_safetensors(path)
        elif path.endswith(".npz"):
            with np.load(path) as data:
                state = {k: data[k] for k in data.files}
        else:
            state = _load_torch(path)
    elif isinstance(source, Mapping):
        state = source
    else:
        raise TypeError(f"from_timm expects a file path or a state dict, got {type(source).__name__}.")
    state = _unwrap_state_dict(state, label)
    used = set()

    def take(name, required=True):
        if name not in state:
            if required:
                raise ValueError(f"{label}: missing tensor {name!r} (is this a timm ViT state dict?).")
            return None
        used.add(name)
        return _to_numpy(state[name])

    def t(a):
        return np.ascontiguousarray(a.T)

    arrays, names = {}, {}

    def put(name, value, source_name):
        arrays[name] = value
        names[name] = source_name

    kernel = take("patch_embed.proj.weight")
    if kernel.ndim != 4:
        raise ValueError(f"{label}: patch_embed.proj.weight must be (d, C, h, w), got {kernel.shape}.")
    put("patch_embedding/kernel", np.transpose(kernel, (2, 3, 1, 0)), "patch_embed.proj.weight")
    put("patch_embedding/bias", take("patch_embed.proj.bias"), "patch_embed.proj.bias")
    put("class_token", take("cls_token").reshape(-1), "cls_token")
    pos = take("pos_embed")
    pos = pos.reshape(pos.shape[-2], pos.shape[-1])
    put("position_embedding", pos, "pos_embed")
    d = kernel.shape[0]
    layers = 0
    while f"blocks.{layers}.norm1.weight" in state:
        layers += 1
    if not layers:
        raise ValueError(f"{label}: no transformer blocks (blocks.0.norm1.weight) found.")
    for i in range(layers):
        p, q = f"blocks.{i}.", f"block_{i}/"
        for norm in ("norm1", "norm2"):
            put(q + norm + "/gamma", take(p + norm + ".weight"), p + norm + ".weight")
            put(q + norm + "/beta", take(p + norm + ".bias"), p + norm + ".bias")
        put(q + "attention/qkv_kernel", t(take(p + "attn.qkv.weight")), p + "attn.qkv.weight")
        qkv_bias = take(p + "attn.qkv.bias", required=False)
        put(q + "attention/qkv_bias", np.zeros(3 * d, "float32") if qkv_bias is None else qkv_bias,
            p + "attn.qkv.bias" if qkv_bias is not None else "(none: qkv_bias=False, zeros)")
        put(q + "attention/out_kernel", t(take(p + "attn.proj.weight")), p + "attn.proj.weight")
        put(q + "attention/out_bias", take(p + "attn.proj.bias"), p + "attn.proj.bias")
        for j in (1, 2):
            put(q + f"mlp/dense{j}_kernel", t(take(p + f"mlp.fc{j}.weight")), p + f"mlp.fc{j}.weight")
            put(q + f"mlp/dense{j}_bias", take(p + f"mlp.fc{j}.bias"), p + f"mlp.fc{j}.bias")
    put("final_norm/gamma", take("norm.weight"), "norm.weight")
    put("final_norm/beta", take("norm.bias"), "norm.bias")
    unexpected = sorted(n for n in set(state) - used if not n.startswith(_TIMM_IGNORED))
    return _read_result(label, unexpected, arrays, pos, grid_size, num_heads, names)


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

    Names: `cls` (1, 1, d), `embedding/kernel` (h, w, C, d) and `/bias`,
    `Transformer/posembed_input/pos_embedding` (1, 1 + S, d),
    `Transformer/encoderblock_{i}/LayerNorm_0/scale|bias`,
    `.../MultiHeadDotProductAttention_1/query|key|value/kernel` (d, heads, d_head) and `/bias`
    (heads, d_head), `.../out/kernel` (heads, d_head, d) and `/bias`, `.../LayerNorm_2/scale|bias`,
    `.../MlpBlock_3/Dense_0|Dense_1/kernel|bias`, `Transformer/encoder_norm/scale|bias`; `head/*` and
    `pre_logits/*` are ignored. The first releases prefix every name with `opt/target/`; big_vision
    checkpoints (prefix `params/`) number the block's modules MultiHeadDotProductAttention_0,
    LayerNorm_0/LayerNorm_1, MlpBlock_0 and keep `pos_embedding` at the top level. The number of heads
    is read from the query kernel.

    Args:
        source: a `.npz` file or an in-memory dict of those names.
        grid_size: (h, w) patch grid of the position embedding; inferred (square) when None.
    """
    label = "JAX ViT"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        _check_file(path)
        label = f"JAX ViT {path!r}"
        with np.load(path) as data:
            state = {k: data[k] for k in data.files}
    elif isinstance(source, Mapping):
        state = dict(source)
    else:
        raise TypeError(f"from_jax expects an .npz path or a dict of arrays, got {type(source).__name__}.")
    prefix = _jax_prefix(state)
    big_vision = f"{prefix}Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel" in state
    attn, ln2, mlp = ("MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0") if big_vision else (
        "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3")
    pos_name = "pos_embedding" if big_vision else "Transformer/posembed_input/pos_embedding"
    used = set()

    def take(name):
        full = prefix + name
        if full not in state:
            raise ValueError(f"{label}: missing tensor {full!r}.")
        used.add(full)
        return np.asarray(state[full], dtype="float32")

    arrays, names = {}, {}

    def put(name, value, source_name):
        arrays[name] = value
        names[name] = prefix + source_name

    put("patch_embedding/kernel", take("embedding/kernel"), "embedding/kernel")
    put("patch_embedding/bias", take("embedding/bias"), "embedding/bias")
    if prefix + "cls" not in state:
        raise ValueError(
            f"{label}: no class token `cls` (a global-average-pooling ViT); VidTr's inflation needs one."
        )
    put("class_token", take("cls").reshape(-1), "cls")
    pos = take(pos_name)
    pos = pos.reshape(pos.shape[-2], pos.shape[-1])
    put("position_embedding", pos, pos_name)
    layers = 0
    while f"{prefix}Transformer/encoderblock_{layers}/LayerNorm_0/scale" in state:
        layers += 1
    if not layers:
        raise ValueError(f"{label}: no transformer blocks (Transformer/encoderblock_0/...) found.")
    num_heads = None
    for i in range(layers):
        p, q = f"Transformer/encoderblock_{i}/", f"block_{i}/"
        for norm, src in (("norm1", "LayerNorm_0"), ("norm2", ln2)):
            put(q + norm + "/gamma", take(p + src + "/scale"), p + src + "/scale")
            put(q + norm + "/beta", take(p + src + "/bias"), p + src + "/bias")
        kernels, biases = [], []
        for part in ("query", "key", "value"):
            kernel = take(f"{p}{attn}/{part}/kernel")  # (d, heads, d_head)
            if kernel.ndim != 3:
                raise ValueError(f"{label}: {p}{attn}/{part}/kernel must be (d, heads, d_head), got {kernel.shape}.")
            num_heads = kernel.shape[1]
            kernels.append(kernel.reshape(kernel.shape[0], -1))
            biases.append(take(f"{p}{attn}/{part}/bias").reshape(-1))
        put(q + "attention/qkv_kernel", np.concatenate(kernels, axis=1), f"{p}{attn}/{{query,key,value}}/kernel")
        put(q + "attention/qkv_bias", np.concatenate(biases), f"{p}{attn}/{{query,key,value}}/bias")
        out = take(f"{p}{attn}/out/kernel")  # (heads, d_head, d)
        put(q + "attention/out_kernel", out.reshape(-1, out.shape[-1]), f"{p}{attn}/out/kernel")
        put(q + "attention/out_bias", take(f"{p}{attn}/out/bias"), f"{p}{attn}/out/bias")
        for j in (1, 2):
            src = f"{p}{mlp}/Dense_{j - 1}"
            put(q + f"mlp/dense{j}_kernel", take(src + "/kernel"), src + "/kernel")
            put(q + f"mlp/dense{j}_bias", take(src + "/bias"), src + "/bias")
    put("final_norm/gamma", take("Transformer/encoder_norm/scale"), "Transformer/encoder_norm/scale")
    put("final_norm/beta", take("Transformer/encoder_norm/bias"), "Transformer/encoder_norm/bias")
    ignored = tuple(prefix + p for p in ("head/", "pre_logits/"))
    unexpected = sorted(n for n in set(state) - used if n.startswith(prefix) and not n.startswith(ignored))
    return _read_result(label, unexpected, arrays, pos, grid_size, num_heads, names)


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
        biases = [value(x.bias).reshape(-1) if getattr(x, "bias", None) is not None else np.zeros(d, "float32")
                  for x in denses]
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

    `ViTWeights` as they are; a keras-hub `ViTBackbone`; a dict (timm names if it has `cls_token` or
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
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        _check_file(path)
        if path.endswith(".npz"):
            with np.load(path) as data:
                keys = list(data.files)
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
        keys = list(_unwrap_state_dict(source, "state dict"))
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


def _with_heads(vit, num_heads):
    if num_heads is not None and vit.num_heads is not None and int(num_heads) != vit.num_heads:
        raise ValueError(f"{vit.source} has {vit.num_heads} heads, but num_heads={num_heads} was given.")
    return vit


def inflate_patch_kernel(kernel, frames, tubelet_init="central"):
    """A ViT patch kernel (h, w, C, d) -> a Conv3D tubelet kernel (frames, h, w, C, d).

    "central": the kernel in frame `frames // 2`, zeros in the others; "average": kernel / frames in
    every frame. On a clip of identical frames both give the image kernel's response exactly.
    """
    if tubelet_init not in TUBELET_INITS:
        raise ValueError(f"tubelet_init must be one of {TUBELET_INITS}, got {tubelet_init!r}.")
    kernel = np.asarray(kernel, dtype="float32")
    frames = int(frames)
    if frames <= 0:
        raise ValueError(f"frames must be positive, got {frames}.")
    if tubelet_init == "average":
        return np.repeat(kernel[None] / frames, frames, axis=0)
    out = np.zeros((frames,) + kernel.shape, dtype="float32")
    out[frames // 2] = kernel
    return out


def resize_position_embedding(position_embedding, old_grid, new_grid):
    """(1 + S_old, d) ViT position embedding -> (1 + S_new, d): the class position kept, the patch
    positions resized (bi)linearly from `old_grid` to `new_grid` (half-pixel centres, the sampling of
    the model's own position-embedding resizing). Equal grids return the input unchanged."""
    pos = np.asarray(position_embedding, dtype="float32")
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if old_grid == new_grid:
        return pos
    d = pos.shape[-1]
    patches = pos[1:].reshape(old_grid[0], old_grid[1], d)
    rows = interpolation_matrix(new_grid[0], old_grid[0])
    cols = interpolation_matrix(new_grid[1], old_grid[1])
    patches = np.einsum("ih,jw,hwd->ijd", rows, cols, patches).reshape(-1, d)
    return np.concatenate([pos[:1], patches.astype("float32")], axis=0)


def inflate_position_embedding(position_embedding, layout, frames):
    """(1 + S, d) ViT position embedding -> the model's flat table.

    layout="grid": (1, (frames + 1) * (S + 1), d), the ViT row [class, patches] repeated for the
    temporal class-token row and every frame. layout="single": (1, 1 + frames * S, d), the class
    position then the patch positions once per frame.
    """
    pos = np.asarray(position_embedding, dtype="float32")
    if layout == "grid":
        return np.tile(pos[None], (int(frames) + 1, 1, 1)).reshape(1, -1, pos.shape[-1])
    if layout == "single":
        return np.concatenate([pos[:1], np.tile(pos[1:], (int(frames), 1))], axis=0)[None]
    raise ValueError(f"layout must be 'grid' or 'single', got {layout!r}.")


@dataclasses.dataclass
class Assignment:
    """One model variable written by `inflate`: from which ViT tensor, with which transform."""

    vit_name: str
    source_name: str
    variable: str
    shape: tuple
    transform: str


@dataclasses.dataclass
class InflationReport:
    """What `inflate` did: every variable it wrote, those it left as initialised, and notes
    (differences between the ViT and the model that inflation cannot remove)."""

    model: str
    source: str
    tubelet_init: str
    assignments: list
    initialised: list
    notes: list

    def as_dict(self):
        return dataclasses.asdict(self)

    def summary(self, max_rows=None):
        rows = self.assignments if max_rows is None else self.assignments[:max_rows]
        lines = [f"ViT {self.source} -> {self.model} (tubelet init {self.tubelet_init!r}):"]
        lines += [f"  {a.source_name} -> {a.variable} {a.shape}: {a.transform}" for a in rows]
        if max_rows is not None and len(self.assignments) > max_rows:
            lines.append(f"  ... and {len(self.assignments) - max_rows} more")
        if self.initialised:
            lines.append("left as initialised: " + ", ".join(self.initialised))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _check_fits(vit, backbone, model_name):
    """A ValueError naming both sides of every size that differs between the ViT and the model."""
    pairs = [
        ("width (hidden_dim)", vit.hidden_dim, backbone.hidden_dim),
        ("depth (num_layers)", vit.num_layers, backbone.num_layers),
        ("MLP size (mlp_dim)", vit.mlp_dim, backbone.mlp_dim),
        ("patch size (h, w)", vit.patch_size, tuple(backbone.patch_size[1:])),
        ("input channels", vit.num_channels, backbone.num_channels),
    ]
    if vit.num_heads is not None:
        pairs.insert(2, ("heads (num_heads)", vit.num_heads, backbone.num_heads))
    wrong = [f"{what}: ViT {a} vs model {b}" for what, a, b in pairs if a != b]
    if wrong:
        raise ValueError(f"The ViT ({vit.source}) does not fit the model {model_name!r}: " + "; ".join(wrong) + ".")


def inflate(model, vit_weights, tubelet_init="central", num_heads=None, grid_size=None):
    """Copies ImageNet ViT weights into a VidTr model (any variant), in place, as the paper does.

    See the module docstring for where each tensor goes. Nothing is assigned unless everything fits.

    Args:
        model: a `VidTrClassifier` or `VidTrBackbone` (e.g. from `vidtr_keras.build_model(preset)`).
        vit_weights: `ViTWeights`, or anything `read_vit` reads (a timm state dict or file, a JAX
            `.npz`, a keras-hub `ViTBackbone`).
        tubelet_init: "central" or "average", how an image patch kernel spreads over a tubelet of
            t > 1 frames (ignored for t = 1).
        num_heads, grid_size: passed to `read_vit` when `vit_weights` is not yet `ViTWeights`.

    Returns:
        an `InflationReport`.

    Raises:
        ValueError: width, depth, heads (where the ViT records them), MLP size, patch size or channels
            differ; the message names both sides.
    """
    if tubelet_init not in TUBELET_INITS:
        raise ValueError(f"tubelet_init must be one of {TUBELET_INITS}, got {tubelet_init!r}.")
    backbone = model.backbone if isinstance(model, VidTrClassifier) else model
    if not isinstance(backbone, VidTrBackbone):
        raise TypeError(f"inflate expects a VidTrClassifier or VidTrBackbone, got {type(model).__name__}.")
    vit = read_vit(vit_weights, num_heads=num_heads, grid_size=grid_size)
    _check_fits(vit, backbone, model.name)
    a, names = vit.arrays, vit.source_names
    notes = []
    plan = []  # (vit name, variable, value, transform)

    emb = backbone.get_layer("patch_embedding").projection
    frames = backbone.patch_size[0]
    if frames == 1:
        how = "(h, w, C, d) -> (1, h, w, C, d)"
    elif tubelet_init == "central":
        how = f"(h, w, C, d) -> ({frames}, h, w, C, d), kernel in frame {frames // 2}, zeros elsewhere"
    else:
        how = f"(h, w, C, d) -> ({frames}, h, w, C, d), kernel / {frames} in every frame"
    kernel = inflate_patch_kernel(a["patch_embedding/kernel"], frames, tubelet_init)
    plan.append(("patch_embedding/kernel", emb.kernel, kernel, how))
    plan.append(("patch_embedding/bias", emb.bias, a["patch_embedding/bias"], "as is"))

    pos_layer = backbone.get_layer("position_embedding")
    pos = a["position_embedding"]
    resized = ""
    if tuple(pos_layer.grid_size) != vit.grid_size:
        pos = resize_position_embedding(pos, vit.grid_size, pos_layer.grid_size)
        resized = f"patch positions resized linearly {vit.grid_size} -> {tuple(pos_layer.grid_size)}, "
        notes.append(
            f"the ViT was trained on a {vit.grid_size} patch grid ({vit.image_size} px), the model uses "
            f"{tuple(pos_layer.grid_size)}: its patch position embedding was resized linearly."
        )
    t = pos_layer.num_frames
    if pos_layer.layout == "grid":
        how = resized + f"[class, patches] repeated over the {t} + 1 rows of the token grid"
    else:
        how = resized + f"class position first, patch positions repeated over {t} frames"
    plan.append(("position_embedding", pos_layer.embeddings, inflate_position_embedding(pos, pos_layer.layout, t), how))

    tokens = backbone.get_layer("class_tokens")
    cls = a["class_token"]
    if tokens.layout == "grid":
        shape = tuple(tokens.temporal_class_tokens.shape)
        plan.append(("class_token", tokens.temporal_class_tokens, np.broadcast_to(cls, shape).copy(),
                     f"copied into all {shape[1]} temporal class tokens"))
        shape = tuple(tokens.spatial_class_tokens.shape)
        plan.append(("class_token", tokens.spatial_class_tokens, np.broadcast_to(cls, shape).copy(),
                     f"copied into all {shape[0]} spatial class tokens"))
    else:
        plan.append(("class_token", tokens.class_token, cls.reshape(1, 1, -1), "as is"))

    for i in range(backbone.num_layers):
        block = backbone.get_layer(f"encoder_block_{i}")
        q = f"block_{i}/"
        attn = block.attn
        plan += [
            (q + "norm1/gamma", block.norm1.gamma, a[q + "norm1/gamma"], "as is"),
            (q + "norm1/beta", block.norm1.beta, a[q + "norm1/beta"], "as is"),
            (q + "attention/qkv_kernel", attn.in_proj_kernel, a[q + "attention/qkv_kernel"], "[q | k | v] columns"),
            (q + "attention/qkv_bias", attn.in_proj_bias, a[q + "attention/qkv_bias"], "[q | k | v]"),
            (q + "attention/out_kernel", attn.out_proj_kernel, a[q + "attention/out_kernel"], "as is"),
            (q + "attention/out_bias", attn.out_proj_bias, a[q + "attention/out_bias"], "as is"),
            (q + "norm2/gamma", block.norm2.gamma, a[q + "norm2/gamma"], "as is"),
            (q + "norm2/beta", block.norm2.beta, a[q + "norm2/beta"], "as is"),
            (q + "mlp/dense1_kernel", block.mlp_dense1.kernel, a[q + "mlp/dense1_kernel"], "as is"),
            (q + "mlp/dense1_bias", block.mlp_dense1.bias, a[q + "mlp/dense1_bias"], "as is"),
            (q + "mlp/dense2_kernel", block.mlp_dense2.kernel, a[q + "mlp/dense2_kernel"], "as is"),
            (q + "mlp/dense2_bias", block.mlp_dense2.bias, a[q + "mlp/dense2_bias"], "as is"),
        ]
    norm = backbone.get_layer("final_norm")
    plan.append(("final_norm/gamma", norm.gamma, a["final_norm/gamma"], "as is"))
    plan.append(("final_norm/beta", norm.beta, a["final_norm/beta"], "as is"))

    wrong = [
        f"{variable.path}: {value.shape} vs {tuple(variable.shape)}"
        for _, variable, value, _ in plan
        if tuple(value.shape) != tuple(variable.shape)
    ]
    if wrong:  # _check_fits should have caught every case; a guard against layouts drifting apart
        raise ValueError(f"Inflated tensors do not fit {model.name!r}: " + "; ".join(wrong))
    for _, variable, value, _ in plan:
        variable.assign(value)  # Keras casts to the variable dtype (float32, bfloat16, ...)

    written = {id(variable) for _, variable, _, _ in plan}
    initialised = [v.path for v in model.weights if id(v) not in written]
    notes.append(
        "VidTr adds the position embedding to the normalised input of its first layer (as the official code "
        "does), where ViT adds it to the input tokens: the inflated model is not the image model even on "
        "a single frame."
    )
    if vit.num_heads is None:
        notes.append(
            f"the ViT source does not record its number of heads; the model splits the width into "
            f"{backbone.num_heads} heads (pass num_heads= to check)."
        )
    if backbone.mlp_activation != "gelu":
        notes.append(
            f"the model's MLP uses {backbone.mlp_activation!r} (the released VidTr code), the ViT was trained "
            "with GELU; build with mlp_activation='gelu' to keep the image model's MLP exactly."
        )
    if vit.layer_norm_epsilon is not None and not math.isclose(vit.layer_norm_epsilon, backbone.layer_norm_epsilon):
        notes.append(
            f"LayerNorm epsilon: ViT {vit.layer_norm_epsilon:g} vs model {backbone.layer_norm_epsilon:g}."
        )
    assignments = [
        Assignment(name, names.get(name, name), variable.path, tuple(int(s) for s in variable.shape), how)
        for name, variable, _, how in plan
    ]
    return InflationReport(model.name, vit.source, tubelet_init, assignments, initialised, notes)


# The `vidtr inflate` command lives in vidtr_keras/cli/convert.py; these names stay importable from
# here for one release.


def cmd_inflate(args):
    from vidtr_keras.cli.convert import cmd_inflate as handler

    return handler(args)


def add_inflate_command(subparsers):
    from vidtr_keras.cli.convert import _register_inflate

    return _register_inflate(subparsers)


__all__ = [
    "Assignment",
    "CANONICAL_LAYOUT",
    "InflationReport",
    "TUBELET_INITS",
    "ViTWeights",
    "add_inflate_command",
    "cmd_inflate",
    "from_jax",
    "from_keras_hub",
    "from_timm",
    "inflate",
    "inflate_patch_kernel",
    "inflate_position_embedding",
    "read_vit",
    "resize_position_embedding",
]
