"""Presets: the paper's and the released models' configurations as data, plus tiny ones for tests.

Each entry: a description, the backbone config (`VidTrBackbone` arguments), the default number of
classes, the model's name in the paper (`paper_name`), the name of the released official checkpoint
and config (`official_name`, None where none was released) and, where an official model exists, its
parameter count with 400 classes (from the official weights' manifest).
"""

import copy

# ViT-B/16 (Dosovitskiy et al.), the encoder every paper model extends to video.
VIT_B = {
    "hidden_dim": 768,
    "num_layers": 12,
    "num_heads": 12,
    "mlp_dim": 3072,
    "image_size": 224,
    "patch_size": (1, 16, 16),
}

_TINY = {"hidden_dim": 32, "num_layers": 3, "num_heads": 4, "mlp_dim": 64, "image_size": 32, "patch_size": (1, 8, 8)}


def _preset(description, config, paper_name=None, official_name=None, official_parameters=None, num_classes=400):
    return {
        "description": description,
        "config": config,
        "num_classes": num_classes,
        "paper_name": paper_name,
        "official_name": official_name,
        "official_parameters": official_parameters,
    }


PRESETS = {
    "vanilla_s": _preset(
        "Vanilla video transformer: joint space-time attention, 8x8 frames (Table 2 Vanilla-Tr).",
        {**VIT_B, "num_frames": 8, "attention": "joint"},
        paper_name="Vanilla-Tr",
    ),
    "vidtr_s": _preset(
        "VidTr-S: separable attention, class-token grid, 8x8 frames.",
        {**VIT_B, "num_frames": 8, "attention": "temporal_spatial"},
        paper_name="VidTr-S",
        official_name="vidtr_s_8x8_patch16_224_k400",
        official_parameters=87_473_296,
    ),
    "vidtr_m": _preset(
        "VidTr-M: 16x4 frames; position embedding in every layer as the released code does for 16 frames.",
        {**VIT_B, "num_frames": 16, "attention": "temporal_spatial", "position_embedding_every_layer": True},
        paper_name="VidTr-M",
        official_name="vidtr_m_16x4_patch16_224_k400",
        official_parameters=88_689_808,
    ),
    "vidtr_l": _preset(
        "VidTr-L: 32x2 frames.",
        {**VIT_B, "num_frames": 32, "attention": "temporal_spatial"},
        paper_name="VidTr-L",
        official_name="vidtr_l_32x2_patch16_224_k400",
        official_parameters=91_122_832,
    ),
    "cvidtr_s": _preset(
        "C-VidTr-S, released schedule: std-topK pooling at layers [1,3,5] dropping [2,2,2] (8->6->4->2).",
        {
            **VIT_B,
            "num_frames": 8,
            "attention": "temporal_spatial",
            "pool_layers": (1, 3, 5),
            "frames_dropped": (2, 2, 2),
        },
        paper_name="C-VidTr-S",
        official_name="cvidtr_s_8x8_patch16_224_k400",
        official_parameters=87_159_952,
    ),
    "cvidtr_s_paper": _preset(
        "C-VidTr-S, paper schedule: pooling at layers [1,2,4] dropping [2,2,2] (not the released config).",
        {
            **VIT_B,
            "num_frames": 8,
            "attention": "temporal_spatial",
            "pool_layers": (1, 2, 4),
            "frames_dropped": (2, 2, 2),
        },
        paper_name="C-VidTr-S",
        official_parameters=87_159_952,
    ),
    "cvidtr_m": _preset(
        "C-VidTr-M: 16x4 frames, pooling at [1,2,4] dropping [8,4,2] (16->8->4->2).",
        {
            **VIT_B,
            "num_frames": 16,
            "attention": "temporal_spatial",
            "pool_layers": (1, 2, 4),
            "frames_dropped": (8, 4, 2),
        },
        paper_name="C-VidTr-M",
        official_name="cvidtr_m_16x4_patch16_224_k400",
        official_parameters=88_364_176,
    ),
    "cvidtr_l": _preset(
        "C-VidTr-L: 32x2 frames, pooling at [1,2,4,6] keeping [16,8,4,2] (not released).",
        {
            **VIT_B,
            "num_frames": 32,
            "attention": "temporal_spatial",
            "pool_layers": (1, 2, 4, 6),
            "frames_dropped": (16, 8, 4, 2),
        },
        paper_name="C-VidTr-L",
    ),
    "vanilla_tiny": _preset(
        "Tiny vanilla model for tests and demos (width 32, 3 layers, 4 frames at 32 px).",
        {**_TINY, "num_frames": 4, "attention": "joint"},
        num_classes=10,
    ),
    "vidtr_tiny": _preset(
        "Tiny VidTr (separable, class-token grid) for tests and demos.",
        {**_TINY, "num_frames": 4, "attention": "temporal_spatial"},
        num_classes=10,
    ),
    "cvidtr_tiny": _preset(
        "Tiny C-VidTr: 8 frames, pooling at [0,1] dropping [2,2], joint layer 2.",
        {**_TINY, "num_frames": 8, "attention": "temporal_spatial", "pool_layers": (0, 1), "frames_dropped": (2, 2)},
        num_classes=10,
    ),
}


def preset_names():
    return sorted(PRESETS)


def get_preset(name):
    """A deep copy of preset `name`; a clear error listing the presets for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Available presets: {', '.join(preset_names())}.")
    return copy.deepcopy(PRESETS[name])


def official_presets():
    """{official (released) model name: preset name} for every preset with a released checkpoint."""
    return {entry["official_name"]: name for name, entry in sorted(PRESETS.items()) if entry["official_name"]}


def preset_for_official_name(official_name):
    """The preset name of a released official model, e.g. "vidtr_s_8x8_patch16_224_k400" -> "vidtr_s"."""
    names = official_presets()
    if official_name not in names:
        raise ValueError(f"Unknown official model {official_name!r}; released models: {', '.join(sorted(names))}.")
    return names[official_name]
