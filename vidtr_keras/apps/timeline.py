"""Predictions over time for long videos, in one decoding pass with bounded memory.

The video is cut into sliding windows (`vidtr_keras.data.windows`: a clip of clip_len x rate frames
every `stride` frames, decoded once, front to back, at most one window's span of frames held).
`predict_timeline` batches the windows through a classifier (`apps.predict.run_padded_batches`) and
returns a `Timeline`: per-window scores, per-window top-k with timestamps, per-class curves smoothed
over neighbouring windows, the segments where the smoothed top class stays the same, a JSON-able dict
and a plot.

Example:
>>> model = load_model("runs/demo").model  # vidtr_keras.models.load_model
>>> timeline = predict_timeline(model, "match.mp4", stride=32)
>>> timeline.segments()[0]  # {'class': 3, 'name': ..., 'start_time': 0.0, 'end_time': 12.8, ...}
>>> timeline.plot("match.png")
"""

import dataclasses
import math
import os

import keras
import numpy as np

from vidtr_keras.apps.predict import run_padded_batches, scores_from_logits
from vidtr_keras.data.sampling import clip_geometry
from vidtr_keras.data.windows import DEFAULT_FPS, SlidingWindows, check_positive, window_batches


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
        geometry: a `ClipGeometry` (default: the model's, `data.sampling.clip_geometry`).
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
    check_positive(batch_size=batch_size)
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
    views_per_batch = int(batch_size) * windows.num_crops
    starts, scores = [], []
    for batch, clips in window_batches(windows, int(batch_size)):  # clips: (windows x crops, T, crop, crop, 3)
        logits = run_padded_batches(model.predict_on_batch, clips, views_per_batch)
        probs = scores_from_logits(logits, multi_label).reshape(len(batch), windows.num_crops, -1).mean(axis=1)
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


__all__ = ["Timeline", "predict_timeline", "smooth_curves"]
