"""ImageNet ViT weights -> any VidTr variant ("inflation": the VidTr paper, section 4, initialises from an
ImageNet-21k ViT-B/16).

The readers (`vidtr_keras.convert.vit_readers`, re-exported here) turn a ViT checkpoint into one
canonical in-memory description, `ViTWeights` (numpy arrays under the names of `CANONICAL_LAYOUT`, in
Keras layouts):
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
of these differences (spec_tests/convert/test_vit_inflation.py checks it).

Example:
>>> model = vidtr_keras.build_model("vidtr_s", num_classes=400)
>>> report = inflate(model, "B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz")
>>> print(report.summary())
"""

import dataclasses
import math

import numpy as np

from vidtr_keras.convert.vit_readers import (  # noqa: F401 - the readers' public names, re-exported
    CANONICAL_LAYOUT,
    TIMM_NAMES,
    ViTWeights,
    _check_file,
    _keras_hub_weights,
    from_jax,
    from_keras_hub,
    from_timm,
    jax_names,
    read_vit,
)
from vidtr_keras.layers.utils import interpolation_matrix
from vidtr_keras.models.backbone import VidTrBackbone
from vidtr_keras.models.classifier import VidTrClassifier

TUBELET_INITS = ("central", "average")


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
        plan.append(
            (
                "class_token",
                tokens.temporal_class_tokens,
                np.broadcast_to(cls, shape).copy(),
                f"copied into all {shape[1]} temporal class tokens",
            )
        )
        shape = tuple(tokens.spatial_class_tokens.shape)
        plan.append(
            (
                "class_token",
                tokens.spatial_class_tokens,
                np.broadcast_to(cls, shape).copy(),
                f"copied into all {shape[0]} spatial class tokens",
            )
        )
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
        notes.append(f"LayerNorm epsilon: ViT {vit.layer_norm_epsilon:g} vs model {backbone.layer_norm_epsilon:g}.")
    assignments = [
        Assignment(name, names.get(name, name), variable.path, tuple(int(s) for s in variable.shape), how)
        for name, variable, _, how in plan
    ]
    return InflationReport(model.name, vit.source, tubelet_init, assignments, initialised, notes)


__all__ = [
    "Assignment",
    "TIMM_NAMES",
    "jax_names",
    "CANONICAL_LAYOUT",
    "InflationReport",
    "TUBELET_INITS",
    "ViTWeights",
    "from_jax",
    "from_keras_hub",
    "from_timm",
    "inflate",
    "inflate_patch_kernel",
    "inflate_position_embedding",
    "read_vit",
    "resize_position_embedding",
]
