"""Which frames make a clip: the official loader's training and test sampling (gluonmm's video loader).

A clip is `clip_len` frames taken every `rate` frames, i.e. it spans a window of
L = clip_len x rate consecutive frames (8 x 8 for VidTr-S, 16 x 4 for -M, 32 x 2 for -L).

Training (the official `VideoDataset`, train and validation modes, amazon-science/gluonmm
`src/transformers/data/datasets/kinetics_datasets.py` at commit 40ee73b, `loadvideo_decord`;
described here, not copied):
- F > L: the window end `e` is drawn uniformly from [L, F - 1], the start is e - L, and the clip is
  `clip_len` evenly spaced positions from the start to e (both included), moved into
  [start, e - 1] and truncated to integers;
- F <= L (a short video): F // rate evenly spaced positions from 0 to F (both included), followed by
  clip_len - F // rate copies of F, all moved into [0, F - 1]: the clip is padded with the last frame.

Test (the same file, `loadvideo_test_decord`): N windows (10 in the paper) with starts
  tick = (F - L + 1) / N,   start_i = int(tick * i)   (i = 0 .. N - 1), all 0 when F < L,
and frames start_i, start_i + rate, ... where a step is only taken while it stays inside the video
(a window that runs past the end repeats the last frame it reached). What the official loader
computes is this form WITHOUT the half-tick shift. The mmaction2 / TSN family
(open-mmlab/mmaction2 0.x, `SampleFrames._get_test_clips` in `mmaction/datasets/pipelines/loading.py`)
uses start_i = int(tick * i + tick / 2) when F > L - 1, i.e. windows centred in their N equal parts
(its later releases spread 3-D clips as PySlowFast does instead). `half_tick=True` gives that
variant; the default is the released VidTr loader's.

Single view (`centre_clip_indices`): the one window centred in the video, start (F - L) // 2 (0 when
F <= L), padded like a test window; what `vidtr explain` shows the model.

The clip a model takes is described by a `ClipGeometry` (frames, rate, crop size); `clip_geometry`
reads it off a model.
"""

import dataclasses

import numpy as np

WINDOW_FRAMES = 64  # the released configurations 8x8, 16x4 and 32x2 all span 64 frames


def _check(num_frames, clip_len, rate):
    if int(num_frames) < 1:
        raise ValueError(f"A video needs at least one frame, got num_frames={num_frames}.")
    if int(clip_len) < 1 or int(rate) < 1:
        raise ValueError(f"clip_len and rate must be >= 1, got clip_len={clip_len}, rate={rate}.")
    return int(num_frames), int(clip_len), int(rate)


def window_length(clip_len, rate):
    """L = clip_len x rate, the consecutive frames a clip spans."""
    return int(clip_len) * int(rate)


def is_short(num_frames, clip_len, rate):
    """True when the video has fewer frames than one clip window (its clips are padded)."""
    return int(num_frames) < window_length(clip_len, rate)


def train_clip_indices(num_frames, clip_len, rate, rng):
    """Frame indices (clip_len,) of one training clip, the official loader's random window.

    Args:
        num_frames: F, frames in the video.
        clip_len: frames per clip.
        rate: frame sampling rate (the window spans clip_len x rate frames).
        rng: a `numpy.random.Generator` (the only source of randomness, for repeatable runs).

    Returns:
        int64 array of `clip_len` indices in [0, F - 1], non-decreasing.
    """
    num_frames, clip_len, rate = _check(num_frames, clip_len, rate)
    span = window_length(clip_len, rate)
    if num_frames <= span:
        spread = num_frames // rate
        positions = np.concatenate(
            [np.linspace(0, num_frames, num=spread), np.full(clip_len - spread, float(num_frames))]
        )
        low, high = 0, num_frames - 1
    else:
        end = int(rng.integers(span, num_frames))
        low, high = end - span, end - 1
        positions = np.linspace(end - span, end, num=clip_len)
    return np.clip(positions, low, high).astype(np.int64)


def view_window_starts(num_frames, clip_len, rate, num_clips=10, half_tick=False):
    """First frame of each of the `num_clips` test windows (see the module docstring).

    Args:
        half_tick: shift every start by half a tick (mmaction2 / TSN test sampling) instead of the
            released VidTr loader's unshifted starts.
    """
    num_frames, clip_len, rate = _check(num_frames, clip_len, rate)
    if int(num_clips) < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}.")
    span = window_length(clip_len, rate)
    if num_frames < span:
        return np.zeros(int(num_clips), np.int64)
    tick = (num_frames - span + 1) / float(num_clips)
    shift = tick / 2.0 if half_tick else 0.0
    return np.array([int(tick * i + shift) for i in range(int(num_clips))], np.int64)


def window_indices(start, num_frames, clip_len, rate):
    """`clip_len` frames from `start` every `rate` frames, not stepping past the last frame."""
    out = np.empty(int(clip_len), np.int64)
    frame = int(start)
    for i in range(int(clip_len)):
        out[i] = frame
        if frame + rate < num_frames:
            frame += rate
    return out


def view_clip_indices(num_frames, clip_len, rate, num_clips=10, half_tick=False):
    """Frame indices (num_clips, clip_len) of the test windows, in temporal order."""
    num_frames, clip_len, rate = _check(num_frames, clip_len, rate)
    starts = view_window_starts(num_frames, clip_len, rate, num_clips, half_tick)
    return np.stack([window_indices(s, num_frames, clip_len, rate) for s in starts])


def centre_clip_indices(num_frames, clip_len, rate):
    """Frame indices (clip_len,) of the one window centred in the video (padded when it is short)."""
    num_frames, clip_len, rate = _check(num_frames, clip_len, rate)
    start = max(0, (num_frames - window_length(clip_len, rate)) // 2)
    return window_indices(start, num_frames, clip_len, rate)


@dataclasses.dataclass
class ClipGeometry:
    """What a clip for the model looks like: `clip_len` frames every `rate` frames, `crop_size` px."""

    clip_len: int
    rate: int
    crop_size: int

    @property
    def window_length(self):
        """L = clip_len x rate, the consecutive frames one clip spans."""
        return window_length(self.clip_len, self.rate)

    def describe(self):
        return f"{self.clip_len}x{self.rate} frames at {self.crop_size}x{self.crop_size} px"


def clip_geometry(model, clip_len=None, rate=None, crop_size=None):
    """A model's clip geometry; `rate` defaults to 64 // clip_len (the released 8x8, 16x4, 32x2).

    The frames and crop size come from the model's `backbone` (`num_frames`, `image_size`), or from
    its input shape; any of the three may be given instead.
    """
    backbone = getattr(model, "backbone", None)
    if clip_len is None:
        clip_len = getattr(backbone, "num_frames", None) or model.input_shape[1]
    if crop_size is None:
        size = getattr(backbone, "image_size", None) or model.input_shape[2:4]
        size = (size, size) if isinstance(size, int) else tuple(size)
        if size[0] is None or size[0] != size[1]:
            raise ValueError(f"The model's frames are {size}; give `crop_size` for a square crop.")
        crop_size = size[0]
    if rate is None:
        rate = max(1, WINDOW_FRAMES // int(clip_len))
    return ClipGeometry(int(clip_len), int(rate), int(crop_size))


__all__ = [
    "WINDOW_FRAMES",
    "ClipGeometry",
    "centre_clip_indices",
    "clip_geometry",
    "is_short",
    "train_clip_indices",
    "view_clip_indices",
    "view_window_starts",
    "window_indices",
    "window_length",
]
