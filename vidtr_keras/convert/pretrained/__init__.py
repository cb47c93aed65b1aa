"""Image ViT checkpoints shipped inside the package, so that inflation, the demo and the specs need no
download and no pretraining run.

Each is a timm state dict (`.npz`, read by `read_vit` with no optional package) made by
`vidtr pretrain-images`; `OUTPUT.json` beside it records the command's settings and accuracies, README.md
how it was made. Name one wherever a ViT file is read, as `vidtr_keras:NAME`:

    vidtr inflate vidtr_keras:tiny_fractal_vit --preset vidtr_tiny --output inflated.keras

or get its path with `path(NAME)`.

Example:
>>> from vidtr_keras.convert import pretrained, vit
>>> vit.inflate(model, "vidtr_keras:tiny_fractal_vit")  # model: build_model("vidtr_tiny") or another tiny preset
"""

import json
import os

PREFIX = "vidtr_keras:"
_HERE = os.path.dirname(os.path.abspath(__file__))

# name -> the file, the heads (a timm state dict does not record them) and what it is.
CHECKPOINTS = {
    "tiny_fractal_vit": {
        "file": "tiny_fractal_vit.npz",
        "num_heads": 4,
        "description": "ViT width 32, 3 blocks, 4 heads, MLP 64 (GELU), 8 px patches, 32 px images, pretrained on "
        "100 FractalDB-style fractal classes; fits the tiny presets (vidtr_tiny, vanilla_tiny, cvidtr_tiny)",
    },
    "tiny_fractal_vit_p4": {
        "file": "tiny_fractal_vit_p4.npz",
        "num_heads": 4,
        "description": "ViT width 32, 2 blocks, 4 heads, MLP 64 (GELU), 4 px patches, 16 px images, pretrained on "
        "100 FractalDB-style fractal classes; fits the learning run's models (the tiny presets with "
        "num_layers=2, image_size=16, patch_size=(1, 4, 4))",
    },
}


def names():
    """The shipped checkpoints' names."""
    return sorted(CHECKPOINTS)


def _entry(name):
    name = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    if name not in CHECKPOINTS:
        raise ValueError(f"Unknown shipped checkpoint {name!r}; shipped: {', '.join(names())}.")
    return CHECKPOINTS[name]


def path(name):
    """The file of the shipped checkpoint `name` (also written `vidtr_keras:NAME`)."""
    file = os.path.join(_HERE, _entry(name)["file"])
    if not os.path.exists(file):
        raise FileNotFoundError(f"The shipped checkpoint {name!r} is missing from the installed package ({file}).")
    return file


def num_heads(name):
    """The attention heads of the shipped checkpoint `name`."""
    return _entry(name)["num_heads"]


def record(name):
    """How `name` was made: the `vidtr pretrain-images` settings, accuracies and history (its JSON record)."""
    with open(path(name) + ".json") as f:
        return json.load(f)


__all__ = ["CHECKPOINTS", "PREFIX", "names", "num_heads", "path", "record"]
