"""The paper's published numbers (Tables 2-4 of arXiv 2104.11746v2), as data."""

# Table 2 (GFLOPs per view, latency per single crop on the authors' GPU, ms) and Table 3 (C-VidTr:
# 30 views x GFLOPs, total latency of the 30 views).
TABLE2 = {
    "vanilla_s": {"model": "Vanilla-Tr", "input": "8x8", "gflops": 89, "latency_ms": 59.1, "top1": 77.5},
    "vidtr_s": {"model": "VidTr-S", "input": "8x8", "gflops": 89, "latency_ms": 65.3, "top1": 77.7},
    "vidtr_m": {"model": "VidTr-M", "input": "16x4", "gflops": 179, "latency_ms": 114.9, "top1": 78.6},
    "vidtr_l": {"model": "VidTr-L", "input": "32x2", "gflops": 351, "latency_ms": 138.8, "top1": 79.1},
}
TABLE3 = {
    "cvidtr_s": {
        "model": "C-VidTr-S",
        "input": "8x8",
        "views": 30,
        "gflops": 39,
        "latency_ms_30_views": 1110,
        "top1": 75.7,
    },
    "cvidtr_m": {
        "model": "C-VidTr-M",
        "input": "16x4",
        "views": 30,
        "gflops": 59,
        "latency_ms_30_views": 1590,
        "top1": 76.7,
    },
    "cvidtr_l": {
        "model": "C-VidTr-L",
        "input": "32x2",
        "views": 30,
        "gflops": 79,
        "latency_ms_30_views": 1740,
        "top1": 77.3,
    },
}
# Table 4a: patching (VidTr-S backbone, 8 frames): patch size -> GFLOPs.
TABLE4A = [
    ("Cubic 4x16^2", (4, 16, 16), 23),
    ("Cubic 2x16^2", (2, 16, 16), 45),
    ("Square 1x16^2", (1, 16, 16), 89),
    ("Square 1x32^2", (1, 32, 32), 21),
]
# Table 4b: training memory (GB, batch size not stated).
TABLE4B = {"spatial": 2.1, "joint": 7.6, "temporal_spatial": 2.3, "spatial_temporal": 2.3}
TABLE4B_RATIO = 3.3
# Table 4c: initialisation / width.
TABLE4C = {"T2T": 34, "ViT-B": 89, "ViT-L": 358}
# Table 4e: pooling at layers [k, k+2], 8 -> 4 -> 2 (C-VidTr-S); Table 4f: at 1 and a later layer.
TABLE4E = [((0, 2), 26), ((1, 3), 32), ((2, 4), 47), ((6, 8), 60)]
TABLE4F = [((1, 2), 30), ((1, 3), 32), ((1, 4), 33), ((1, 5), 34)]
