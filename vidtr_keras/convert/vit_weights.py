"""`ViTWeights`, the canonical in-memory description of a ViT image encoder that every ViT reader
produces and `vidtr_keras.convert.vit.inflate` consumes, and the table machinery the readers share
(`apply_table`: canonical name -> source tensor name(s) and a layout transform).
"""

import dataclasses

import numpy as np

from vidtr_keras.convert import io

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
            "norm1/gamma": (d,),
            "norm1/beta": (d,),
            "norm2/gamma": (d,),
            "norm2/beta": (d,),
            "attention/qkv_kernel": (d, 3 * d),
            "attention/qkv_bias": (3 * d,),
            "attention/out_kernel": (d, d),
            "attention/out_bias": (d,),
            "mlp/dense1_kernel": (d, mlp),
            "mlp/dense1_bias": (mlp,),
            "mlp/dense2_kernel": (mlp, d),
            "mlp/dense2_bias": (d,),
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


def _check_file(path):
    return io.check_file(path, "ViT checkpoint")


def _grid_from_positions(num_positions, grid_size, source):
    """The patch grid of a (1 + S)-row position embedding; square unless `grid_size` says otherwise."""
    patches = int(num_positions) - 1
    if grid_size is not None:
        return io.grid_from_positions(patches, grid_size, f"{source}: position embedding of {num_positions} rows")
    try:
        return io.grid_from_positions(patches)
    except ValueError:
        raise ValueError(
            f"{source}: the position embedding has {num_positions} rows, not 1 class position + a square "
            "grid of patches; pass grid_size=(h, w) (a ViT without class position is not supported)."
        ) from None


def _read_result(label, unexpected, arrays, pos, grid_size, num_heads, names):
    """The `ViTWeights` a reader found, or an error listing the tensors it could not place."""
    if unexpected:
        raise ValueError(
            f"{label}: tensors this reader does not understand (a ViT variant with extra parts?): "
            + ", ".join(unexpected[:20])
            + (f", ... and {len(unexpected) - 20} more" if len(unexpected) > 20 else "")
        )
    return ViTWeights(
        arrays,
        grid_size=_grid_from_positions(pos.shape[0], grid_size, label),
        num_heads=num_heads,
        layer_norm_epsilon=1e-6,
        source=label,
        source_names=names,
    )


def apply_table(table, state, label, prefix="", count_key=None, optional=(), hint=""):
    """Reads every canonical name of `table` from `state`; returns (arrays, source names, used names).

    `count_key` (a source name with {i}) counts the blocks; a missing tensor is a ValueError naming it,
    except names in `optional` (returned as None for the reader to fill).
    """
    layers = 0
    while prefix + count_key.format(i=layers) in state:
        layers += 1
    if not layers:
        raise ValueError(f"{label}: no transformer blocks ({prefix}{count_key.format(i=0)}) found.")
    arrays, names, used = {}, {}, set()
    for canonical, (sources, transform) in table.items():
        for i in range(layers) if "{i}" in canonical else (None,):
            name = canonical.format(i=i) if i is not None else canonical
            full = [prefix + s.format(i=i) for s in sources]
            absent = [f for f in full if f not in state]
            if absent:
                if canonical in optional:
                    arrays[name], names[name] = None, None
                    continue
                raise ValueError(f"{label}: missing tensor {absent[0]!r}{hint}.")
            used.update(full)
            try:
                arrays[name] = transform(*(io.to_numpy(state[f]) for f in full))
            except ValueError as err:
                raise ValueError(f"{label}: {', '.join(full)}: {err}.") from err
            names[name] = full[0] if len(full) == 1 else _joined(full)
    return arrays, names, used, layers


def _joined(full):
    """`a/query/kernel, a/key/kernel, a/value/kernel` -> `a/{query,key,value}/kernel` for reports."""
    parts = [f.split("/") for f in full]
    if len({len(p) for p in parts}) == 1:
        differ = [j for j in range(len(parts[0])) if len({p[j] for p in parts}) > 1]
        if len(differ) == 1:
            j = differ[0]
            return "/".join(parts[0][:j] + ["{" + ",".join(p[j] for p in parts) + "}"] + parts[0][j + 1 :])
    return " + ".join(full)
