"""The data pipeline, video file -> frames -> clip: OpenCV decoding, the official clip sampling and the
clip geometry a model takes, transforms (one normalisation), sliding windows over long videos,
annotation lists and a Keras `PyDataset` (the official gluonmm data recipe). Nothing here imports the
models.

Example:
>>> from vidtr_keras import data
>>> views = data.load_views("clip.mp4", clip_len=8, rate=8, crop_size=224)  # 10 windows x 3 crops
>>> views.views.shape
(30, 8, 224, 224, 3)
"""

from vidtr_keras.data.annotations import (
    AnnotationList,
    AnnotationProblem,
    VideoRecord,
    read_annotations,
    read_class_names,
)
from vidtr_keras.data.dataset import (
    ClipViews,
    VideoClipDataset,
    iter_views,
    load_centre_clip,
    load_train_clip,
    load_val_clip,
    load_views,
)
from vidtr_keras.data.procedural import ProceduralDataset, write_benchmark
from vidtr_keras.data.sampling import (
    ClipGeometry,
    centre_clip_indices,
    clip_geometry,
    is_short,
    train_clip_indices,
    view_clip_indices,
    view_window_starts,
    window_indices,
    window_length,
)
from vidtr_keras.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    center_crop,
    default_short_side,
    normalize,
    random_crop,
    resize_short_side,
    train_transform,
    val_transform,
    view_crops,
)
from vidtr_keras.data.video import TruncatedVideoError, VideoDecodeError, VideoReader
from vidtr_keras.data.windows import SlidingWindows

__all__ = [
    "AnnotationList",
    "AnnotationProblem",
    "ClipGeometry",
    "ClipViews",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ProceduralDataset",
    "SlidingWindows",
    "TruncatedVideoError",
    "VideoClipDataset",
    "VideoDecodeError",
    "VideoReader",
    "VideoRecord",
    "center_crop",
    "centre_clip_indices",
    "clip_geometry",
    "default_short_side",
    "is_short",
    "iter_views",
    "load_centre_clip",
    "load_train_clip",
    "load_val_clip",
    "load_views",
    "normalize",
    "random_crop",
    "read_annotations",
    "read_class_names",
    "resize_short_side",
    "train_clip_indices",
    "train_transform",
    "val_transform",
    "view_clip_indices",
    "view_crops",
    "view_window_starts",
    "window_indices",
    "window_length",
    "write_benchmark",
]
