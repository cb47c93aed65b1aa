"""Spatial transforms of clips (frames, height, width, 3) uint8, the recipe of the released gluonmm configs.

Training: short side -> `short_side` (256 for 224 crops), random rescale x U(1, 1.25) of both sides,
horizontal flip with probability 0.5, random `crop_size` crop, ImageNet mean/std.
Validation during training: short side -> `short_side`, centre crop.
Test views: short side -> `crop_size`, three `crop_size` crops along the long side (its start, centre
and end), ImageNet mean/std.
Every random choice is made once per clip (all frames get the same crop and flip) from an explicit
`numpy.random.Generator`, so a seed makes a run repeatable.

Sizes follow the official transforms: the long side becomes int(size x long / short); a frame whose
short side already has the size is left as it is; bilinear interpolation (OpenCV INTER_LINEAR).
The size rules, the centre-crop offsets and the ImageNet mean/std come from
`vidtr_keras.layers.preprocessing`, whose `VidTrPreprocessor` does the single test view in
`keras.ops`: one definition for both pipelines.
"""

import numpy as np

from vidtr_keras.layers.preprocessing import IMAGENET_MEAN, IMAGENET_STD, center_crop_offsets, resized_size

RESCALE_RANGE = (1.0, 1.25)


def default_short_side(crop_size):
    """The training short side for a crop size: 256 for 224, the same ratio for other sizes."""
    return int(round(int(crop_size) * 256 / 224))


def _resize(clip, height, width):
    import cv2

    if clip.shape[1:3] == (height, width):
        return clip
    return np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR) for frame in clip])


def resize_short_side(clip, size):
    """Resizes every frame so its shorter side is `size` (aspect ratio kept, long side truncated)."""
    height, width = clip.shape[1:3]
    return _resize(clip, *resized_size(height, width, size))  # unchanged when the short side has the size


def random_rescale(clip, rng, scale_range=RESCALE_RANGE):
    """Scales both sides by one factor drawn from U(scale_range)."""
    factor = rng.uniform(*scale_range)
    height, width = clip.shape[1:3]
    return _resize(clip, int(height * factor), int(width * factor))


def random_flip(clip, rng, probability=0.5):
    """Mirrors the clip left-right with `probability`."""
    if rng.random() < probability:
        return clip[:, :, ::-1]
    return clip


def _check_crop(clip, size):
    height, width = clip.shape[1:3]
    if size > height or size > width:
        raise ValueError(f"Cannot crop {size}x{size} from {width}x{height} frames.")


def crop(clip, top, left, size):
    return clip[:, top : top + size, left : left + size]


def random_crop(clip, size, rng):
    """A `size` x `size` crop at a uniformly drawn position (the same for every frame)."""
    size = int(size)
    _check_crop(clip, size)
    height, width = clip.shape[1:3]
    left = int(rng.integers(0, width - size + 1))
    top = int(rng.integers(0, height - size + 1))
    return crop(clip, top, left, size)


def center_crop(clip, size):
    """The central `size` x `size` crop."""
    size = int(size)
    _check_crop(clip, size)
    top, left = center_crop_offsets(*clip.shape[1:3], size)
    return crop(clip, top, left, size)


def three_crop_offsets(height, width, size):
    """(top, left) of the three test crops along the long side: start, centre, end."""
    size = int(size)
    if size > height or size > width:
        raise ValueError(f"Cannot crop {size}x{size} from {width}x{height} frames.")
    if width >= height:
        step = (width - size) // 2
        top = (height - size) // 2
        return [(top, 0), (top, step), (top, 2 * step)]
    step = (height - size) // 2
    left = (width - size) // 2
    return [(0, left), (step, left), (2 * step, left)]


def normalize(clip, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 RGB -> float32 (x / 255 - mean) / std."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    return (np.asarray(clip, np.float32) / 255.0 - mean) / std


def denormalize(clip, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """The inverse of `normalize`, back to float pixel values in [0, 255]."""
    return (np.asarray(clip, np.float32) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)) * 255.0


def train_transform(clip, rng, crop_size, short_side=None, scale_range=RESCALE_RANGE, flip=True):
    """The training augmentation: (T, H, W, 3) uint8 -> (T, crop, crop, 3) float32, normalised."""
    short_side = default_short_side(crop_size) if short_side is None else int(short_side)
    clip = resize_short_side(clip, short_side)
    if scale_range is not None:
        clip = random_rescale(clip, rng, scale_range)
    if flip:
        clip = random_flip(clip, rng)
    return normalize(random_crop(clip, crop_size, rng))


def val_transform(clip, crop_size, short_side=None):
    """Validation during training: short side -> `short_side`, centre crop, normalised."""
    short_side = default_short_side(crop_size) if short_side is None else int(short_side)
    return normalize(center_crop(resize_short_side(clip, short_side), crop_size))


def view_crops(clip, crop_size, num_crops=3, normalized=True):
    """The spatial test views of a clip: short side -> `crop_size`, then `num_crops` crops.

    Args:
        num_crops: 3 (start, centre and end of the long side, the paper's views) or 1 (centre).
        normalized: apply ImageNet mean/std (float32); False keeps uint8 pixels.

    Returns:
        (num_crops, T, crop_size, crop_size, 3).
    """
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}.")
    clip = resize_short_side(clip, crop_size)
    if num_crops == 1:
        crops = [center_crop(clip, crop_size)]
    else:
        crops = [crop(clip, top, left, int(crop_size)) for top, left in three_crop_offsets(*clip.shape[1:3], crop_size)]
    crops = np.stack(crops)
    return normalize(crops) if normalized else crops


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESCALE_RANGE",
    "center_crop",
    "default_short_side",
    "denormalize",
    "normalize",
    "random_crop",
    "random_flip",
    "random_rescale",
    "resize_short_side",
    "three_crop_offsets",
    "train_transform",
    "val_transform",
    "view_crops",
]
