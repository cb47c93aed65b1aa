"""Predictions over time for long videos, in one decoding pass with bounded memory.

A window is a clip of `clip_len` frames taken every `rate` frames from its start (it spans
L = clip_len x rate frames, as a test view does in the paper's protocol). Windows start every `stride`
frames: 0, stride, 2 stride, ... while every frame of the clip exists (start + (clip_len - 1) x rate
< num_frames), so fewer than `stride` frames at the end start no window of their own. A video too
short for one clip gets one window at frame 0, padded with the last frame it reaches (the official
test loader's rule, `sampling.window_indices`).

`SlidingWindows` decodes the video once, front to back (`VideoReader.stream`), resizes and crops each
frame that some window needs as soon as it is decoded, and forgets it once the last window that
needs it is complete: at most L preprocessed frames are held, whatever the video's length.
`predict_timeline` batches the windows through a classifier and returns a `Timeline`: per-window
scores, per-window top-k with timestamps, per-class curves smoothed over neighbouring windows, the
segments where the smoothed top class stays the same, a JSON-able dict and a plot.

Example:
>>> model, _ = inference.load_model("runs/demo")
>>> timeline = predict_timeline(model, "match.mp4", stride=32)
>>> timeline.segments()[0]  # {'class': 3, 'name': ..., 'start_time': 0.0, 'end_time': 12.8, ...}
>>> timeline.plot("match.png")
"""

import dataclasses
import math
import os

import keras
import numpy as np

from vidtr_keras.data import sampling, transforms
from vidtr_keras.data.video import VideoReader

DEFAULT_FPS = 25.0


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


def _check_positive(**values):
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
        _check_positive(clip_len=clip_len, rate=rate, crop_size=crop_size)
        if num_crops not in (1, 3):
            raise ValueError(f"`num_crops` must be 1 or 3, got {num_crops!r}.")
        self.clip_len, self.rate, self.crop_size = int(clip_len), int(rate), int(crop_size)
        self.span = sampling.window_length(self.clip_len, self.rate)
        self.stride = max(1, self.span // 2) if stride is None else stride
        _check_positive(stride=self.stride)
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
                indices = end + self.rate * np.arange(self.clip_len)
                clip = np.stack([buffer[int(i)] for i in indices], axis=1)
                for old in [i for i in buffer if i < end + self.stride]:
                    del buffer[old]
                self.short = False
                yield Window(int(end), indices, clip)
        self.num_frames = self.reader.num_frames
        if self.progress is not None:
            self.progress(self.num_frames, self.num_frames)
        if self.short is None:  # no window fitted: one padded window, as the test loader makes
            self.short = True
            indices = sampling.window_indices(0, self.num_frames, self.clip_len, self.rate)
            clip = np.stack([buffer[int(i)] for i in indices], axis=1)
            yield Window(0, indices, clip, short=True)


def batched(windows, batch_size):
    """Lists of up to `batch_size` consecutive windows."""
    _check_positive(batch_size=batch_size)
    batch = []
    for window in windows:
        batch.append(window)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_fixed_batches(fn, views, batch_size):
    """`fn` on `views` (N, ...) in batches of exactly `batch_size` rows (the last one padded with
    zeros, so a compiled function sees one shape), outputs concatenated and cut back to N rows."""
    views = np.asarray(views, np.float32)
    out = []
    for start in range(0, len(views), batch_size):
        chunk = views[start : start + batch_size]
        real = len(chunk)
        if real < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - real,) + chunk.shape[1:], chunk.dtype)])
        out.append(np.asarray(keras.ops.convert_to_numpy(fn(chunk)))[:real])
    return np.concatenate(out)


def _scores(logits, multi_label):
    logits = np.asarray(logits, np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def smooth_curves(scores, width):
    """Centred moving average of (windows, classes) scores over `width` windows (odd; 1 = none); at
    the ends the average is over the windows that exist."""
    scores = np.asarray(scores, np.float64)
    width = int(width)
    if width < 1 or width % 2 == 0:
        raise ValueError(f"`smooth` must be a positive odd number of windows, got {width}.")
    if width == 1 or len(scores) < 2:
        return scores.copy()
    half = width // 2
    padded = np.pad(scores, ((half, half), (0, 0)))
    counts = np.pad(np.ones(len(scores)), (half, half))
    kernel = np.ones(width)
    sums = np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(scores.shape[1])], axis=1)
    return sums / np.convolve(counts, kernel, mode="valid")[:, None]


@dataclasses.dataclass
class Timeline:
    """Scores of the windows of one video.

    Attributes:
        path: the video; fps: frames per second used for timestamps (the container's, or
            `DEFAULT_FPS` when it states none, `fps_known` False).
        num_frames: frames decoded; clip_len, rate, stride, crop_size, num_crops: the windows.
        starts: (windows,) first frame of each window.
        scores: (windows, classes) softmax (sigmoid when multi_label) averaged over the crops.
        smoothed: `scores` smoothed over `smooth` windows.
        class_names: names of the classes, or None.
        short: the video is shorter than one window (one padded window).
    """

    path: str
    fps: float
    fps_known: bool
    num_frames: int
    clip_len: int
    rate: int
    stride: int
    crop_size: int
    num_crops: int
    starts: np.ndarray
    scores: np.ndarray
    smoothed: np.ndarray
    smooth: int
    multi_label: bool = False
    class_names: list = None
    short: bool = False

    @property
    def span(self):
        return self.clip_len * self.rate

    @property
    def start_times(self):
        return self.starts / self.fps

    @property
    def end_times(self):
        """End of each window's span (start + clip_len x rate frames), capped at the video's end."""
        return np.minimum(self.starts + self.span, self.num_frames) / self.fps

    @property
    def center_times(self):
        return (self.start_times + self.end_times) / 2.0

    @property
    def duration(self):
        return self.num_frames / self.fps

    def name(self, index):
        names = self.class_names
        return names[index] if names is not None and index < len(names) else str(index)

    def top_k(self, k=5, smoothed=False):
        """Per window: [(class, probability), ...] of the k highest (raw or smoothed) scores."""
        scores = self.smoothed if smoothed else self.scores
        k = max(1, min(int(k), scores.shape[1]))
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[(int(c), float(row[c])) for c in top] for row, top in zip(scores, order)]

    def segments(self):
        """Runs of windows whose smoothed top class is the same: dicts with the class, its name, the
        first and last window, start/end times (a boundary lies halfway between the centres of the
        windows either side of it; the first segment starts at 0, the last ends at the video's end)
        and the mean smoothed score of the class over the run."""
        best = np.argmax(self.smoothed, axis=1)
        centers = self.center_times
        out = []
        first = 0
        for i in range(1, len(best) + 1):
            if i == len(best) or best[i] != best[first]:
                start = 0.0 if first == 0 else (centers[first - 1] + centers[first]) / 2.0
                end = self.duration if i == len(best) else (centers[i - 1] + centers[i]) / 2.0
                c = int(best[first])
                out.append(
                    {
                        "class": c,
                        "name": self.name(c),
                        "first_window": first,
                        "last_window": i - 1,
                        "start_time": float(start),
                        "end_time": float(end),
                        "score": float(self.smoothed[first:i, c].mean()),
                    }
                )
                first = i
        return out

    def curve_classes(self, limit=10):
        """The `limit` classes with the highest peak smoothed score (all when `limit` is None)."""
        order = np.argsort(-self.smoothed.max(axis=0), kind="stable")
        return [int(c) for c in (order if limit is None else order[: int(limit)])]

    def to_dict(self, top_k=5, curve_limit=10):
        """A JSON-able summary: settings, per-window top-k with timestamps, segments, and the smoothed
        curves of the `curve_limit` classes that peak highest (None: every class)."""
        windows = []
        for i, top in enumerate(self.top_k(top_k)):
            windows.append(
                {
                    "start_frame": int(self.starts[i]),
                    "start_time": round(float(self.start_times[i]), 4),
                    "end_time": round(float(self.end_times[i]), 4),
                    "top": [{"class": c, "name": self.name(c), "probability": round(p, 6)} for c, p in top],
                }
            )
        return {
            "video": self.path,
            "num_frames": int(self.num_frames),
            "fps": self.fps,
            "fps_known": self.fps_known,
            "duration": round(self.duration, 4),
            "short": bool(self.short),
            "clip_len": self.clip_len,
            "rate": self.rate,
            "stride": self.stride,
            "crop_size": self.crop_size,
            "num_crops": self.num_crops,
            "scores": "sigmoid" if self.multi_label else "softmax",
            "smooth_windows": self.smooth,
            "windows": windows,
            "segments": self.segments(),
            "curves": {
                "time": [round(float(t), 4) for t in self.center_times],
                "classes": [
                    {"class": c, "name": self.name(c), "scores": [round(float(v), 6) for v in self.smoothed[:, c]]}
                    for c in self.curve_classes(curve_limit)
                ],
            },
        }

    def plot(self, path, classes=5, title=None):
        """Writes a PNG (or any format matplotlib knows from the extension) of the smoothed curves of
        the `classes` classes that peak highest (or a list of class indices) against time, with the
        segments' boundaries. Needs matplotlib; returns the path."""
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise ImportError("Plotting a timeline needs matplotlib: pip install matplotlib.") from err
        chosen = self.curve_classes(classes) if isinstance(classes, int) else [int(c) for c in classes]
        fig, ax = plt.subplots(figsize=(10, 4))
        try:
            times = self.center_times
            for c in chosen:
                ax.plot(times, self.smoothed[:, c], label=self.name(c), linewidth=1.5)
            for segment in self.segments()[1:]:
                ax.axvline(segment["start_time"], color="0.6", linestyle=":", linewidth=1)
            ax.set_xlim(0, max(self.duration, float(times[-1])))
            ax.set_ylim(0, 1)
            ax.set_xlabel("time (s)" + ("" if self.fps_known else f" at an assumed {self.fps:g} fps"))
            ax.set_ylabel(("sigmoid" if self.multi_label else "softmax") + f" (smoothed over {self.smooth} windows)")
            name = os.path.basename(self.path)
            ax.set_title(title or f"{name}: {len(self.starts)} windows of {self.clip_len}x{self.rate} frames")
            ax.legend(loc="upper right", fontsize="small")
            fig.tight_layout()
            fig.savefig(path, dpi=100)
        finally:
            plt.close(fig)
        return path


def predict_timeline(
    model,
    path,
    geometry=None,
    stride=None,
    num_crops=1,
    batch_size=8,
    smooth=3,
    multi_label=False,
    class_names=None,
    fps=None,
    progress=None,
    verbose=0,
):
    """Scores of sliding windows over a whole video (see the module docstring).

    Args:
        model: a classifier taking (batch, clip_len, crop, crop, 3) normalised clips, returning logits.
        path: the video file.
        geometry: `inference.ClipGeometry` (default: the model's, `inference.clip_geometry`).
        stride: frames between window starts (default: half a window, clip_len x rate / 2).
        num_crops: crops per window, 1 (centre) or 3; their scores are averaged.
        batch_size: windows per forward pass (x num_crops clips; the last batch is padded so the
            model sees one shape).
        smooth: odd number of windows the per-class curves are averaged over.
        multi_label: sigmoid instead of softmax scores.
        class_names: names of the classes, for the outputs.
        fps: frames per second for timestamps (default: the container's, else 25).
        progress: optional callable `progress(frames_decoded, total_frames)`.
        verbose: 1 shows a `keras.utils.Progbar` of the decoded frames (when `progress` is None).

    Returns:
        a `Timeline`.
    """
    from vidtr_keras.apps.predict import clip_geometry

    _check_positive(batch_size=batch_size)
    if int(smooth) < 1 or int(smooth) % 2 == 0:
        raise ValueError(f"`smooth` must be a positive odd number of windows, got {smooth}.")
    if fps is not None and not float(fps) > 0:
        raise ValueError(f"`fps` must be positive, got {fps}.")
    outputs = getattr(model, "output_shape", (None,))[-1]
    if class_names is not None and outputs is not None and len(class_names) != outputs:
        raise ValueError(f"`class_names` has {len(class_names)} names; the model has {outputs} classes.")
    geometry = geometry or clip_geometry(model)
    if progress is None and verbose:
        bar = {}

        def progress(done, total):
            if "bar" not in bar:
                bar["bar"] = keras.utils.Progbar(total, unit_name="frame")
            bar["bar"].target = total
            bar["bar"].update(done)

    windows = SlidingWindows(path, geometry.clip_len, geometry.rate, geometry.crop_size, stride, num_crops, progress)
    mean, std = np.asarray(transforms.IMAGENET_MEAN, np.float32), np.asarray(transforms.IMAGENET_STD, np.float32)
    views_per_batch = int(batch_size) * windows.num_crops
    starts, scores = [], []
    for batch in batched(windows, int(batch_size)):
        clips = np.concatenate([w.clip for w in batch])  # (windows x crops, T, crop, crop, 3)
        clips = (clips.astype(np.float32) / 255.0 - mean) / std
        logits = run_fixed_batches(model.predict_on_batch, clips, views_per_batch)
        probs = _scores(logits, multi_label).reshape(len(batch), windows.num_crops, -1).mean(axis=1)
        starts.extend(w.start for w in batch)
        scores.append(probs)
    scores = np.concatenate(scores)
    if class_names is not None and len(class_names) != scores.shape[1]:
        raise ValueError(f"`class_names` has {len(class_names)} names; the model has {scores.shape[1]} classes.")
    fps_known = fps is not None or (windows.fps is not None and windows.fps > 0 and math.isfinite(windows.fps))
    used_fps = float(fps) if fps is not None else (float(windows.fps) if fps_known else DEFAULT_FPS)
    return Timeline(
        path=windows.path,
        fps=used_fps,
        fps_known=bool(fps_known),
        num_frames=int(windows.num_frames),
        clip_len=geometry.clip_len,
        rate=geometry.rate,
        stride=windows.stride,
        crop_size=geometry.crop_size,
        num_crops=windows.num_crops,
        starts=np.asarray(starts, np.int64),
        scores=scores,
        smoothed=smooth_curves(scores, smooth),
        smooth=int(smooth),
        multi_label=bool(multi_label),
        class_names=list(class_names) if class_names is not None else None,
        short=bool(windows.short),
    )


__all__ = [
    "SlidingWindows",
    "Timeline",
    "Window",
    "batched",
    "predict_timeline",
    "run_fixed_batches",
    "smooth_curves",
]
