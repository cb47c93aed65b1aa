"""VidTrPreprocessor: raw uint8 frames of any size -> the normalised clip a VidTr model takes."""

import keras
import numpy as np
from keras import layers, ops

# The official normalisation (the released training configs: ImageNet mean/std on [0, 1] RGB pixels). Defined here,
# in the lowest layer that needs them: `vidtr_keras.data.transforms` takes these values and the two size rules below
# from this module (data sits above layers; layers never import data), so the Keras layer and the NumPy pipeline
# share one definition of the test-view geometry and normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resized_size(height, width, short_side):
    """(height, width) after resizing the shorter side to `short_side`.

    As the official test transform: the long side becomes int(short_side * long / short) (truncated),
    and a frame whose shorter side already has the size is left as it is.
    """
    height, width, short_side = int(height), int(width), int(short_side)
    if min(height, width) == short_side:
        return height, width
    if width < height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def center_crop_offsets(height, width, crop_size):
    """(top, left) of the central crop, rounded as the official centre crop does."""
    return int(round((height - crop_size) / 2.0)), int(round((width - crop_size) / 2.0))


@keras.saving.register_keras_serializable(package="vidtr_keras")
class VidTrPreprocessor(layers.Layer):
    """Raw video frames -> a normalised, square clip: the test-time transform of the paper.

    Frames of any size are resized so their shorter side is `short_side` (bilinear, half-pixel
    centres, no antialiasing: OpenCV's INTER_LINEAR as the official transforms use), the central
    `crop_size` x `crop_size` square is cut out, and pixels are normalised with the ImageNet mean and
    standard deviation, `(x / 255 - mean) / std` (the released configs). With `short_side == crop_size` (the
    default) this is the centre view of the paper's test protocol (`vidtr_keras.data.transforms.view_crops`
    with one crop); `short_side=round(crop_size * 256 / 224)` gives the validation transform used during
    training (`val_transform`).

    The resized pixels are rounded to integers, as OpenCV does for uint8 frames, so the result agrees
    with the NumPy/OpenCV pipeline of `vidtr_keras.data` to within one grey level (OpenCV interpolates
    uint8 frames in fixed point).

    The rule is the data pipeline's single test view: `vidtr_keras.data.transforms.view_crops` with
    one crop (`resized_size`, `center_crop_offsets`) followed by `transforms.normalize`, written here
    with `keras.ops` so it runs inside a model on every backend.

    With `num_frames` set, a clip with another number of frames is brought to that length: a longer
    one is subsampled to `num_frames` evenly spaced frames (the centre of each of `num_frames` equal
    segments), a shorter one is padded by repeating its last frame (as the evaluation protocol pads
    short videos, `vidtr_keras.data.sampling.window_indices`).

    The output size depends on the frame size, so the frame height and width must be known when the
    layer is called (true for NumPy arrays and eager tensors; a symbolic input needs static sizes).

    Args:
        crop_size: int, side of the square output frames (the model's `image_size`).
        short_side: int, the shorter side after resizing; defaults to `crop_size`.
        num_frames: int or None; the number of output frames (None keeps the input's).
        mean: per-channel mean of [0, 1] pixels (ImageNet's by default).
        std: per-channel standard deviation of [0, 1] pixels (ImageNet's by default).
        **kwargs: standard layer arguments.

    Call arguments:
        frames: (frames, height, width, 3) or (batch, frames, height, width, 3) RGB pixels in
            [0, 255], uint8 or float.

    Returns:
        float (…, num_frames, crop_size, crop_size, 3), the same rank as the input.

    Example:
    >>> pre = VidTrPreprocessor(crop_size=32)
    >>> pre(np.zeros((5, 48, 64, 3), "uint8")).shape
    (5, 32, 32, 3)
    """

    def __init__(self, crop_size=224, short_side=None, num_frames=None, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.crop_size = int(crop_size)
        self.short_side = self.crop_size if short_side is None else int(short_side)
        self.num_frames = None if num_frames is None else int(num_frames)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if self.crop_size <= 0:
            raise ValueError(f"{self.name}: crop_size must be positive, got {crop_size}.")
        if self.short_side < self.crop_size:
            raise ValueError(
                f"{self.name}: short_side={self.short_side} is smaller than crop_size={self.crop_size}; "
                "the centre crop would not fit."
            )
        if self.num_frames is not None and self.num_frames <= 0:
            raise ValueError(f"{self.name}: num_frames must be positive, got {num_frames}.")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"{self.name}: mean and std need 3 values (RGB), std positive; got {mean}, {std}.")
        self.built = True

    def _check(self, shape):
        if len(shape) not in (4, 5):
            raise ValueError(
                f"{self.name} expects (frames, height, width, 3) or (batch, frames, height, width, 3) RGB "
                f"frames, got shape {tuple(shape)} (rank {len(shape)})."
            )
        if shape[-1] is not None and shape[-1] != 3:
            raise ValueError(
                f"{self.name} expects RGB frames with 3 channels last, got {shape[-1]} channels in shape "
                f"{tuple(shape)}."
            )
        height, width = shape[-3], shape[-2]
        if height is None or width is None:
            raise ValueError(
                f"{self.name} needs the frame height and width to compute the resize, got shape {tuple(shape)}."
            )
        if height <= 0 or width <= 0:
            raise ValueError(f"{self.name}: empty frames of shape {tuple(shape)}.")
        if shape[-4] is not None and shape[-4] == 0:
            raise ValueError(f"{self.name}: a clip without frames, shape {tuple(shape)}.")

    def _frame_indices(self, frames):
        if self.num_frames is None or frames is None or frames == self.num_frames:
            return None
        if frames > self.num_frames:  # the centre of each of num_frames equal segments
            return [int((i + 0.5) * frames / self.num_frames) for i in range(self.num_frames)]
        return list(range(frames)) + [frames - 1] * (self.num_frames - frames)

    def call(self, frames):
        shape = tuple(frames.shape)
        self._check(shape)
        unbatched = len(shape) == 4
        x = ops.cast(frames, "float32")
        if unbatched:
            x = ops.expand_dims(x, 0)
        indices = self._frame_indices(shape[-4])
        if indices is not None:
            x = ops.take(x, np.asarray(indices, "int32"), axis=1)
        height, width = shape[-3], shape[-2]
        new_h, new_w = resized_size(height, width, self.short_side)
        batch_frames = ops.shape(x)[:2]
        if (new_h, new_w) != (height, width):
            x = ops.reshape(x, (-1, height, width, 3))
            x = ops.image.resize(
                x, (new_h, new_w), interpolation="bilinear", antialias=False, data_format="channels_last"
            )
            # OpenCV rounds resized uint8 frames; rounding here keeps the two pipelines together.
            x = ops.clip(ops.round(x), 0.0, 255.0)
            x = ops.reshape(x, (batch_frames[0], batch_frames[1], new_h, new_w, 3))
        if min(new_h, new_w) < self.crop_size:  # only when a frame was already short_side but smaller
            raise ValueError(f"{self.name}: cannot crop {self.crop_size}x{self.crop_size} from {new_w}x{new_h} frames.")
        top, left = center_crop_offsets(new_h, new_w, self.crop_size)
        x = x[:, :, top : top + self.crop_size, left : left + self.crop_size, :]
        mean = np.asarray(self.mean, "float32")
        std = np.asarray(self.std, "float32")
        x = (x / 255.0 - mean) / std
        if unbatched:
            x = ops.squeeze(x, 0)
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check(input_shape)
        frames = input_shape[-4] if self.num_frames is None else self.num_frames
        return input_shape[:-4] + (frames, self.crop_size, self.crop_size, 3)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "crop_size": self.crop_size,
                "short_side": self.short_side,
                "num_frames": self.num_frames,
                "mean": list(self.mean),
                "std": list(self.std),
            }
        )
        return config


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VidTrPreprocessor", "center_crop_offsets", "resized_size"]
