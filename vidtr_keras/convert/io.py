"""Reading checkpoint files, in one place for every converter.

- `read_state_dict(path)`: a `.pth`/`.pt`/`.bin` PyTorch file (torch imported only then, tensors
  memory-mapped where the file allows), a `.safetensors` file (the `safetensors` package, imported
  only then) or a `.npz` -> {name: float32 numpy array}.
- `unwrap_state_dict(obj)`: a training checkpoint {'model': state_dict, 'epoch': ...} (also
  'state_dict', 'model_state') -> the state dict, without DistributedDataParallel's `module.` prefix.
- `grid_from_positions(...)`: the patch grid behind a flat position embedding.

Nothing here knows a model's tensor names; the converters (`gluonmm`, `vit`) map names.
"""

import math
import os
from collections.abc import Mapping

import numpy as np

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SUFFIXES = TORCH_SUFFIXES + (".safetensors", ".npz")
WRAPPER_KEYS = ("model", "state_dict", "model_state")
DDP_PREFIX = "module."
# The test-fixture .npz layout of official outputs: `sd/<name>` tensors plus `input`, `logits`, `config_json`.
FIXTURE_PREFIX = "sd/"


def check_file(path, what="checkpoint"):
    """`path` as a string; a FileNotFoundError naming `what` when there is no such file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {what} at {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"The {what} path {path!r} is a directory, not a file.")
    return path


def to_numpy(value):
    """A torch tensor (any float dtype, bfloat16 included, possibly requiring grad) or an array-like
    -> a float32 numpy array."""
    if hasattr(value, "detach"):
        return value.detach().cpu().float().numpy()
    return np.asarray(value, dtype="float32")


def strip_ddp_prefix(name):
    return name[len(DDP_PREFIX) :] if name.startswith(DDP_PREFIX) else name


def unwrap_state_dict(obj, source="checkpoint"):
    """The state dict inside a checkpoint object, with the `module.` prefix removed from every name.

    Accepts a bare state dict or a training checkpoint that holds one under 'model', 'state_dict' or
    'model_state'. Values are left as they are (torch tensors stay tensors).
    """
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{source} holds no state dict (found {type(obj).__name__}).")
    return {strip_ddp_prefix(str(name)): value for name, value in obj.items()}


def arrays_of(state_dict):
    """{name: float32 numpy array} for every tensor of a state dict (non-tensor entries are dropped)."""
    out = {}
    for name, value in state_dict.items():
        if hasattr(value, "detach") or hasattr(value, "shape"):  # torch tensors, numpy and other arrays
            out[name] = to_numpy(value)
    return out


def _read_torch(path):
    try:
        import torch  # lazily: only PyTorch files need torch, and the other backends do not install it
    except ImportError as err:
        raise ImportError(
            f"Reading the PyTorch file {path!r} needs torch: pip install 'vidtr-keras[torch]' "
            "(or save the state dict as .safetensors or .npz where torch is installed)."
        ) from err
    try:
        try:  # memory-mapped: tensors are read from disk when converted, not all at once
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as err:  # noqa: BLE001 - report any unreadable file the same way
        raise ValueError(f"Could not read {path!r} as a PyTorch checkpoint: {err}") from err


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file  # lazily: an optional dependency
    except ImportError as err:
        raise ImportError(
            f"Reading the safetensors file {path!r} needs the safetensors package: pip install safetensors "
            "(or convert the file to .npz where it is installed)."
        ) from err
    import ml_dtypes  # noqa: F401 - a Keras dependency; registers bfloat16 with numpy, for bf16 checkpoints

    try:
        return load_file(path)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"Could not read {path!r} as a safetensors file: {err}") from err


def _read_npz(path):
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"Could not read {path!r} as a numpy .npz archive: {err}") from err
    if any(k.startswith(FIXTURE_PREFIX) for k in arrays):
        arrays = {k[len(FIXTURE_PREFIX) :]: v for k, v in arrays.items() if k.startswith(FIXTURE_PREFIX)}
    return arrays


def read_state_dict(path, what="checkpoint"):
    """A checkpoint file -> {name: float32 numpy array}, unwrapped and without the `module.` prefix.

    Args:
        path: `.pth`/`.pt`/`.bin` (PyTorch; needs torch), `.safetensors` (needs safetensors) or `.npz`
            (arrays by name; the `sd/` layout of the official-output fixtures keeps only those tensors).
        what: what the file should be, for error messages ("ViT checkpoint", ...).

    Raises:
        FileNotFoundError: no such file. ValueError: an unknown suffix or an unreadable file.
        ImportError: the library a format needs is missing (the message says how to install it).
    """
    path = check_file(path, what)
    if path.endswith(TORCH_SUFFIXES):
        obj = _read_torch(path)
    elif path.endswith(".safetensors"):
        obj = _read_safetensors(path)
    elif path.endswith(".npz"):
        obj = _read_npz(path)
    else:
        raise ValueError(f"Unknown {what} file type {path!r}: expected one of {', '.join(SUFFIXES)}.")
    return arrays_of(unwrap_state_dict(obj, f"{what} {path!r}"))


def npz_names(path):
    """The array names in an `.npz` file, without reading the arrays."""
    with np.load(check_file(path)) as data:
        return list(data.files)


def grid_side(num_patches, what):
    """The side of a square patch grid of `num_patches`; a ValueError naming `what` otherwise."""
    side = int(round(math.sqrt(max(num_patches, 0))))
    if num_patches <= 0 or side * side != num_patches:
        raise ValueError(
            f"{what}: {num_patches} patches per frame is not a square grid; pass the grid size explicitly."
        )
    return side


def grid_from_positions(num_patches, grid_size=None, what="position embedding"):
    """(rows, columns) of the patch grid behind `num_patches` positions: `grid_size` when given (checked
    against the count), else the square grid."""
    num_patches = int(num_patches)
    if grid_size is not None:
        grid_size = tuple(int(g) for g in grid_size)
        if len(grid_size) != 2 or grid_size[0] * grid_size[1] != num_patches:
            raise ValueError(f"{what}: grid_size={grid_size} does not hold the {num_patches} patch positions it has.")
        return grid_size
    side = grid_side(num_patches, what)
    return (side, side)


__all__ = [
    "SUFFIXES",
    "arrays_of",
    "check_file",
    "grid_from_positions",
    "grid_side",
    "npz_names",
    "read_state_dict",
    "strip_ddp_prefix",
    "to_numpy",
    "unwrap_state_dict",
]
