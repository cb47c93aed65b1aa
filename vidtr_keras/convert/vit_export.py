"""An image ViT -> a timm checkpoint file, the way back of the timm reader (`vit_readers.from_timm`).

- `from_image_vit(model)`: a Keras image ViT (`vidtr_keras.models.image_vit.build_image_vit`) ->
  `ViTWeights`, the canonical description inflation reads;
- `to_timm(vit)`: `ViTWeights` -> a timm `VisionTransformer` state dict (numpy arrays in PyTorch layouts,
  the inverse of every transform in `TIMM_NAMES`), plus `head.weight`/`head.bias` when given;
- `save_timm(path, state)`: `.safetensors` (timm's format today; the `safetensors` package writes it when
  installed, else `write_safetensors` writes the same public layout) or `.npz` (the same names, read by
  `read_vit` with no optional package).

`read_vit(save_timm(path, to_timm(vit)))` gives `vit` back exactly (spec_tests/convert/test_pretrain_images.py).
"""

import json
import os

import numpy as np
from keras import ops

from vidtr_keras.convert import vit_readers
from vidtr_keras.convert.vit_weights import ViTWeights

# The inverse of each layout transform of the timm table (Keras layout -> PyTorch layout).
_INVERSE = {
    vit_readers._same: lambda a: a,
    vit_readers._transpose: lambda a: np.ascontiguousarray(a.T),  # Dense (in, out) -> Linear (out, in)
    vit_readers._conv2d_kernel: lambda a: np.ascontiguousarray(np.transpose(a, (3, 2, 0, 1))),  # -> (d, C, h, w)
    vit_readers._flat: lambda a: a.reshape(1, 1, -1),  # (d,) -> (1, 1, d)
    vit_readers._rows: lambda a: a[None],  # (1 + S, d) -> (1, 1 + S, d)
}
SUFFIXES = (".safetensors", ".npz")


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype="float32")


def from_image_vit(model, source=None):
    """A Keras image ViT (`build_image_vit`) -> `ViTWeights` (its layers read by name)."""
    try:
        conv = model.get_layer("patch_embedding")
        tokens = model.get_layer("tokens")
        norm = model.get_layer("final_norm")
    except ValueError as err:
        raise ValueError(f"{model.name!r} is not an image ViT from build_image_vit: {err}") from err
    arrays = {
        "patch_embedding/kernel": _numpy(conv.kernel),
        "patch_embedding/bias": _numpy(conv.bias),
        "class_token": _numpy(tokens.class_token).reshape(-1),
        "position_embedding": _numpy(tokens.position_embedding)[0],
        "final_norm/gamma": _numpy(norm.gamma),
        "final_norm/beta": _numpy(norm.beta),
    }
    i = 0
    while any(layer.name == f"encoder_block_{i}" for layer in model.layers):
        block, q = model.get_layer(f"encoder_block_{i}"), f"block_{i}/"
        arrays.update(
            {
                q + "norm1/gamma": _numpy(block.norm1.gamma),
                q + "norm1/beta": _numpy(block.norm1.beta),
                q + "attention/qkv_kernel": _numpy(block.attn.in_proj_kernel),
                q + "attention/qkv_bias": _numpy(block.attn.in_proj_bias),
                q + "attention/out_kernel": _numpy(block.attn.out_proj_kernel),
                q + "attention/out_bias": _numpy(block.attn.out_proj_bias),
                q + "norm2/gamma": _numpy(block.norm2.gamma),
                q + "norm2/beta": _numpy(block.norm2.beta),
                q + "mlp/dense1_kernel": _numpy(block.mlp_dense1.kernel),
                q + "mlp/dense1_bias": _numpy(block.mlp_dense1.bias),
                q + "mlp/dense2_kernel": _numpy(block.mlp_dense2.kernel),
                q + "mlp/dense2_bias": _numpy(block.mlp_dense2.bias),
            }
        )
        i += 1
    grid = int(round((arrays["position_embedding"].shape[0] - 1) ** 0.5))
    return ViTWeights(
        arrays,
        grid_size=(grid, grid),
        num_heads=model.get_layer("encoder_block_0").num_heads,
        layer_norm_epsilon=norm.epsilon,
        source=source or f"Keras image ViT {model.name!r}",
    )


def to_timm(vit, head=None):
    """`ViTWeights` -> {timm name: float32 array in PyTorch layout}.

    Args:
        vit: `ViTWeights`.
        head: optional (kernel (d, classes), bias (classes,)) of the image classifier, written as timm's
            `head.weight` (classes, d) and `head.bias` (inflation ignores them).
    """
    state = {}
    for canonical, (sources, forward) in vit_readers.TIMM_NAMES.items():
        (timm_name,) = sources
        blocks = range(vit.num_layers) if "{i}" in canonical else (None,)
        for i in blocks:
            array = vit.arrays[canonical.format(i=i) if i is not None else canonical]
            state[timm_name.format(i=i) if i is not None else timm_name] = _INVERSE[forward](array)
    if head is not None:
        kernel, bias = head
        state["head.weight"] = np.ascontiguousarray(np.asarray(kernel, "float32").T)
        state["head.bias"] = np.asarray(bias, "float32")
    return {name: np.ascontiguousarray(a, dtype="float32") for name, a in state.items()}


def write_safetensors(path, arrays, metadata=None):
    """Writes float32 arrays in the safetensors layout (huggingface/safetensors, public): an 8-byte
    little-endian header length, a JSON header {name: {"dtype": "F32", "shape", "data_offsets": [begin,
    end]}, "__metadata__": {str: str}} padded with spaces to 8 bytes, then the raw little-endian data."""
    header, offset, blobs = {}, 0, []
    for name in sorted(arrays):
        data = np.ascontiguousarray(arrays[name], dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(np.shape(arrays[name])),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    return path


def save_timm(path, state, metadata=None):
    """Writes a timm state dict to `path`: `.safetensors` or `.npz` (by suffix). Returns the path."""
    path = os.fspath(path)
    if not path.endswith(SUFFIXES):
        raise ValueError(f"output must end in {' or '.join(SUFFIXES)} (timm state dict), got {path!r}.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".npz"):
        np.savez(path, **state)
        return path
    try:
        from safetensors.numpy import save_file  # lazily: an optional dependency
    except ImportError:
        return write_safetensors(path, state, metadata)
    save_file(state, path, metadata={str(k): str(v) for k, v in (metadata or {}).items()} or None)
    return path


__all__ = ["SUFFIXES", "from_image_vit", "save_timm", "to_timm", "write_safetensors"]
