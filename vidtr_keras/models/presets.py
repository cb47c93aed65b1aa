"""Presets: the paper's and the released models' configurations as data, plus tiny ones for tests."""

import copy

_VIT_B = {"hidden_dim": 768, "num_layers": 12, "num_heads": 12, "mlp_dim": 3072, "image_size": 224, "patch_size": (1, 16, 16)}

_TINY = {"hidden_dim": 32, "num_layers": 3, "num_heads": 4, "mlp_dim": 64, "image_size": 32, "patch_size": (1, 8, 8)}

# Each entry: a description, the backbone config, the default number of classes and, where an official
# model exists, its parameter count with 400 classes (manifest.json of the official weights).
PRESETS = {
    "vanilla_s": {
        "description": "Vanilla video transformer: joint space-time attention, 8x8 frames (Table 2 Vanilla-Tr).",
        "config": {**_VIT_B, "num_frames": 8, "attention": "joint"},
        "num_classes": 400,
        "official_parameters": None,
    },
    "vidtr_s": {
        "description": "VidTr-S: separable attention, class-token grid, 8x8 frames (vidtr_s_8x8_patch16_224_k400).",
        "config": {**_VIT_B, "num_frames": 8, "attention": "temporal_spatial"},
        "num_classes": 400,
        "official_parameters": 87_473_296,
    },
    "vidtr_m": {
        "description": "VidTr-M: 16x4 frames; position embedding in every layer as the released code does for 16 frames.",
        "config": {**_VIT_B, "num_frames": 16, "attention": "temporal_spatial", "position_embedding_every_layer": True},
        "num_classes": 400,
        "official_parameters": 88_689_808,
    },
    "vidtr_l": {
        "description": "VidTr-L: 32x2 frames (vidtr_l_32x2_patch16_224_k400).",
        "config": {**_VIT_B, "num_frames": 32, "attention": "temporal_spatial"},
        "num_classes": 400,
        "official_parameters": 91_122_832,
    },
    "cvidtr_s": {
        "description": "C-VidTr-S, released schedule: std-topK pooling at layers [1,3,5] dropping [2,2,2] (8->6->4->2).",
        "config": {**_VIT_B, "num_frames": 8, "attention": "temporal_spatial", "pool_layers": (1, 3, 5), "frames_dropped": (2, 2, 2)},
        "num_classes": 400,
        "official_parameters": 87_159_952,
    },
    "cvidtr_s_paper": {
        "description": "C-VidTr-S, paper schedule: pooling at layers [1,2,4] dropping [2,2,2].",
        "config": {**_VIT_B, "num_frames": 8, "attention": "temporal_spatial", "pool_layers": (1, 2, 4), "frames_dropped": (2, 2, 2)},
        "num_classes": 400,
        "official_parameters": 87_159_952,
    },
    "cvidtr_m": {
        "description": "C-VidTr-M: 16x4 frames, pooling at [1,2,4] dropping [8,4,2] (16->8->4->2).",
        "config": {**_VIT_B, "num_frames": 16, "attention": "temporal_spatial", "pool_layers": (1, 2, 4), "frames_dropped": (8, 4, 2)},
        "num_classes": 400,
        "official_parameters": 88_364_176,
    },
    "cvidtr_l": {
        "description": "C-VidTr-L: 32x2 frames, pooling at [1,2,4,6] keeping [16,8,4,2] (not released).",
        "config": {**_VIT_B, "num_frames": 32, "attention": "temporal_spatial", "pool_layers": (1, 2, 4, 6), "frames_dropped": (16, 8, 4, 2)},
        "num_classes": 400,
        "official_parameters": None,
    },
    "vanilla_tiny": {
        "description": "Tiny vanilla model for tests and demos (width 32, 3 layers, 4 frames at 32 px).",
        "config": {**_TINY, "num_frames": 4, "attention": "joint"},
        "num_classes": 10,
        "official_parameters": None,
    },
    "vidtr_tiny": {
        "description": "Tiny VidTr (separable, class-token grid) for tests and demos.",
        "config": {**_TINY, "num_frames": 4, "attention": "temporal_spatial"},
        "num_classes": 10,
        "official_parameters": None,
    },
    "cvidtr_tiny": {
        "description": "Tiny C-VidTr: 8 frames, pooling at [0,1] dropping [2,2], joint layer 2.",
        "config": {**_TINY, "num_frames": 8, "attention": "temporal_spatial", "pool_layers": (0, 1), "frames_dropped": (2, 2)},
        "num_classes": 10,
        "official_parameters": None,
    },
}


def preset_names():
    return sorted(PRESETS)


def get_preset(name):
    """A deep copy of preset `name`; a clear error listing the presets for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Available presets: {', '.join(preset_names())}.")
    return copy.deepcopy(PRESETS[name])
