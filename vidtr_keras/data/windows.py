"""Sliding windows over a whole video, decoded in one pass with bounded memory (long videos).

A window is a clip of `clip_len` frames taken every `rate` frames from its start (it spans
L = clip_len x rate frames, as a test view does in the paper's protocol). Windows start every `stride`
frames: 0, stride, 2 stride, ... while every frame of the clip exists (start + (clip_len - 1) x rate
< num_frames), so fewer than `stride` frames at the end start no window of their own. A video too
short for one clip gets one window at frame 0, padded with the last frame it reaches (the official
test loader's rule, `sampling.window_indices`).

`SlidingWindows` decodes the video once, front to back (`VideoReader.stream`), resizes and crops each
frame that some window needs as soon as it is decoded (the test-view transform, `transforms.view_crops`),
and forgets it once the last window that needs it is complete: at most L preprocessed frames are held,
whatever the video's length. `window_batches` groups the windows and normalises their clips
(`transforms.normalize`) for a model; `vidtr_keras.apps.timeline` and `vidtr_keras.apps.features` both
read videos this way.
"""

import dataclasses

import numpy as np

from vidtr_keras.data import sampling, transforms
from vidtr_keras.data.video import VideoReader

DEFAULT_FPS = 25.0  # frames per second assumed for timestamps when the container states none


@dataclasses.dataclass
class Window:
    """One window of a video: its first frame, the frames of its clip, and the clip.

    Attributes:
        start: first frame of the window.
        indices: (clip_len,) frame indices of the clip.
        clip: (num_crops, clip_len, crop, crop, 3) uint8 crops (not normalised).
        short: the video is shorter than one window (the clip repeats its last frame).
    """

    start: int
    indices: np.ndarray
    clip: np.ndarray
    short: bool = False


def check_positive(**values):
    """Raises ValueError naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if value is None or int(value) < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


class SlidingWindows:
    """The windows of one video, decoded in one pass (see the module docstring).

    Args:
        path: the video file.
        clip_len: frames per clip.
        rate: frame sampling rate (a window spans clip_len x rate frames).
        crop_size: side of the square crops; frames are resized so their short side is `crop_size`
            (the test-view transform, `transforms.view_crops`).
        stride: frames between the starts of consecutive windows (default: half a window).
        num_crops: 1 (centre crop) or 3 (start, centre and end of the long side).
        progress: optional callable `progress(frames_decoded, total_frames)`, called about every
            `progress_every` decoded frames and once at the end (`total_frames` is the container's
            count, which may be inexact, until the end, where it is the decoded count).
        progress_every: frames between progress calls.

    Attributes (after iterating):
        num_frames: frames decoded; `fps`, `height`, `width`: from the container; `short`: the video
        was shorter than one window; `peak_buffered`: the most preprocessed frames held at once,
        never more than one window's span, (clip_len - 1) x rate + 1, whatever the video's length.

    Raises:
        FileNotFoundError, VideoDecodeError: on opening (the constructor) or while decoding.
    """

    def __init__(self, path, clip_len, rate, crop_size, stride=None, num_crops=1, progress=None, progress_every=64):
        check_positive(clip_len=clip_len, rate=rate, crop_size=crop_size)
        if num_crops not in (1, 3):
            raise ValueError(f"`num_crops` must be 1 or 3, got {num_crops!r}.")
        self.clip_len, self.rate, self.crop_size = int(clip_len), int(rate), int(crop_size)
        self.span = sampling.window_length(self.clip_len, self.rate)
        self.stride = max(1, self.span // 2) if stride is None else stride
        check_positive(stride=self.stride)
        self.stride = int(self.stride)
        self.num_crops = int(num_crops)
        self.progress = progress
        self.progress_every = max(1, int(progress_every))
        self.reader = VideoReader(path)
        self.path = self.reader.path
        self.fps = self.reader.fps
        self.height, self.width = self.reader.height, self.reader.width
        self.num_frames = self.reader.num_frames
        self.short = None
        self.peak_buffered = 0
        self._last_offset = (self.clip_len - 1) * self.rate

    def needed(self, frame):
        """True when some window takes `frame` (frames no window takes are never converted)."""
        first = max(0, -(-(frame - self._last_offset) // self.stride))
        for k in range(first, frame // self.stride + 1):
            if (frame - k * self.stride) % self.rate == 0:
                return True
        return False

    def _crops(self, frame):
        # The test-view transform is per frame, so cropping each frame as it arrives gives the clip
        # `transforms.view_crops` would give for the whole window.
        return transforms.view_crops(frame[None], self.crop_size, self.num_crops, normalized=False)[:, 0]

    def _window(self, start, num_frames, short=False, buffer=None):
        indices = sampling.window_indices(start, num_frames, self.clip_len, self.rate)
        clip = np.stack([buffer[int(i)] for i in indices], axis=1)
        return Window(int(start), indices, clip, short=short)

    def __iter__(self):
        buffer = {}
        reported = 0
        total = self.reader.num_frames
        for index, frame in self.reader.stream(keep=self.needed):
            buffer[index] = self._crops(frame)
            self.peak_buffered = max(self.peak_buffered, len(buffer))
            if self.progress is not None and (index + 1) // self.progress_every > reported // self.progress_every:
                reported = index + 1  # the stream skips frames no window needs: report when one passes a step
                self.progress(reported, max(total or 0, reported))
            end = index - self._last_offset
            if end >= 0 and end % self.stride == 0:  # the window starting at `end` is complete
                window = self._window(end, index + 1, buffer=buffer)  # every frame exists: no padding
                for old in [i for i in buffer if i < end + self.stride]:
                    del buffer[old]
                self.short = False
                yield window
        self.num_frames = self.reader.num_frames
        if self.progress is not None:
            self.progress(self.num_frames, self.num_frames)
        if self.short is None:  # no window fitted: one padded window, as the test loader makes
            self.short = True
            yield self._window(0, self.num_frames, short=True, buffer=buffer)


def batched(windows, batch_size):
    """Lists of up to `batch_size` consecutive windows."""
    check_positive(batch_size=batch_size)
    batch = []
    for window in windows:
        batch.append(window)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def window_batches(windows, batch_size):
    """(windows, clips) for every `batch_size` consecutive windows (fewer in the last): clips are the
    windows' crops, normalised (`transforms.normalize`), window-major: (windows x num_crops,
    clip_len, crop, crop, 3) float32, as a model takes them."""
    for batch in batched(windows, batch_size):
        yield batch, transforms.normalize(np.concatenate([w.clip for w in batch]))


__all__ = ["DEFAULT_FPS", "SlidingWindows", "Window", "batched", "check_positive", "window_batches"]
