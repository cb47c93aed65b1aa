"""Backbone embeddings of videos for downstream models (`vidtr features`).

Three kinds of feature (`mode`), all read after the backbone's final LayerNorm:

- `"class_token"`: the feature the classifier sees (the backbone's output, (d,));
- `"mean"`: the mean of the patch tokens, class tokens left out, (d,);
- `"tokens"`: every patch token, (frames, grid_h, grid_w, d), with `frames` the temporal tokens the
  last layer keeps (fewer than the clip's frames for C-VidTr, whose pooling drops frames) and
  (grid_h, grid_w) = crop size / patch size.

Two ways to cut a video into clips:

- per video (`video_features`): the test views of the paper's evaluation protocol (10 clips x 3 crops),
  `num_clips` windows x `num_crops` crops (10 x 3 by default); `pool="mean"` averages the views'
  features as evaluation averages their scores, `pool="none"` keeps them (num_clips, num_crops, ...);
- per window (`window_features`): sliding windows over the whole video in one decoding pass with
  bounded memory (`data.windows.SlidingWindows`), for long videos: (windows, ...) with their start
  frames and times.

Example:
>>> model = load_model("vidtr_s", weights="vidtr_s.weights.h5").model  # vidtr_keras.models.load_model
>>> video_features(model, "clip.mp4").shape  # (768,): class token averaged over 30 views
>>> feats = window_features(model, "match.mp4", stride=32, mode="mean")
>>> feats.features.shape, feats.start_times[:3]  # (windows, 768), [0.0, 1.28, 2.56]
"""

import dataclasses
import weakref

import keras
import numpy as np

from vidtr_keras.apps.predict import run_padded_batches
from vidtr_keras.data.dataset import VIDEO_ERRORS, load_views
from vidtr_keras.data.sampling import clip_geometry
from vidtr_keras.data.windows import DEFAULT_FPS, SlidingWindows, window_batches
from vidtr_keras.models import VidTrBackbone

FEATURE_MODES = ("class_token", "mean", "tokens")
POOLINGS = ("mean", "none")


def backbone_of(model):
    """The `VidTrBackbone` of a model (a classifier's `backbone`, or the backbone itself)."""
    if isinstance(model, VidTrBackbone):
        return model
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, VidTrBackbone):
        return backbone
    raise ValueError(
        f"Features come from a VidTrBackbone; the model {getattr(model, 'name', model)!r} is neither one nor has one "
        "as its `backbone`."
    )


_SEQUENCE_MODELS = weakref.WeakKeyDictionary()


def sequence_model(backbone):
    """A model sharing the backbone's layers up to its final LayerNorm, whose output is the whole
    token sequence; made once per backbone (so its compiled function is reused)."""
    model = _SEQUENCE_MODELS.get(backbone)
    if model is None:
        final = backbone.get_layer("final_norm").output
        model = keras.Model(backbone.input, final, name=f"{backbone.name}_tokens")
        _SEQUENCE_MODELS[backbone] = model
    return model


class FeatureExtractor:
    """Clips (batch, frames, crop, crop, 3), normalised -> backbone features (numpy).

    Args:
        model: a `VidTrBackbone` or a model with one as `backbone` (e.g. `VidTrClassifier`).
        mode: "class_token", "mean" or "tokens" (see the module docstring).

    Call arguments:
        clips: a float32 batch of normalised clips.

    Returns:
        (batch, d) for "class_token" and "mean"; (batch, frames, grid_h, grid_w, d) for "tokens".
    """

    def __init__(self, model, mode="class_token"):
        if mode not in FEATURE_MODES:
            raise ValueError(f"`mode` must be one of {FEATURE_MODES}, got {mode!r}.")
        self.backbone = backbone_of(model)
        self.mode = mode
        self._model = self.backbone if mode == "class_token" else sequence_model(self.backbone)

    def sequence(self, clips):
        """The backbone's token sequence after its final LayerNorm (what its readout picks the class
        token from): (batch, frames + 1, patches + 1, d) for the class-token grid, else
        (batch, 1 + frames x patches, d)."""
        model = sequence_model(self.backbone)
        return np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(np.asarray(clips, np.float32))))

    def patch_tokens(self, sequence, height, width):
        """The patch tokens of the final-norm output, (batch, frames, grid_h, grid_w, d): the grid
        layout is (batch, frames + 1, patches + 1, d) with class tokens in row and column 0; the
        single layout (batch, 1 + frames x patches, d) with the class token first."""
        sequence = np.asarray(sequence)
        grid_h, grid_w = height // self.backbone.patch_size[1], width // self.backbone.patch_size[2]
        if sequence.ndim == 4:
            patches = sequence[:, 1:, 1:]
        else:
            patches = sequence[:, 1:]
        batch, dim = sequence.shape[0], sequence.shape[-1]
        return patches.reshape(batch, -1, grid_h, grid_w, dim)

    def __call__(self, clips):
        clips = np.asarray(clips, np.float32)
        out = np.asarray(keras.ops.convert_to_numpy(self._model.predict_on_batch(clips)))
        if self.mode == "class_token":
            return out
        tokens = self.patch_tokens(out, clips.shape[2], clips.shape[3])
        if self.mode == "mean":
            return tokens.mean(axis=(1, 2, 3))
        return tokens


def _check_pool(pool):
    if pool not in POOLINGS:
        raise ValueError(f"`pool` must be one of {POOLINGS}, got {pool!r}.")


def _geometry(model, backbone):
    """The model's clip geometry (`data.sampling.clip_geometry`); a bare backbone states its own."""
    if model is backbone:
        height, width = backbone.image_size
        return clip_geometry(model, clip_len=backbone.num_frames, crop_size=height if height == width else None)
    return clip_geometry(model)


def _extractor(model, mode, extractor):
    return extractor if extractor is not None else FeatureExtractor(model, mode)


def video_features(
    model,
    path,
    geometry=None,
    mode="class_token",
    num_clips=10,
    num_crops=3,
    pool="mean",
    batch_size=6,
    half_tick=False,
    extractor=None,
):
    """Features of one video from its test views.

    Args:
        model: see `FeatureExtractor`.
        path: the video file.
        geometry: a `ClipGeometry` (default: the model's).
        mode: "class_token", "mean" or "tokens".
        num_clips, num_crops: the views (10 x 3 in the paper's protocol).
        pool: "mean" over all views (as evaluation averages scores) or "none".
        batch_size: views per forward pass (the last batch is padded: one shape).
        half_tick: mmaction-style centred windows instead of the released loader's starts.
        extractor: a `FeatureExtractor` to reuse across videos (its mode wins).

    Returns:
        pool="mean": (d,) or (frames, grid_h, grid_w, d); pool="none": (num_clips, num_crops, ...).
    """
    _check_pool(pool)
    extractor = _extractor(model, mode, extractor)
    geometry = geometry or _geometry(model, extractor.backbone)
    views = load_views(path, geometry.clip_len, geometry.rate, geometry.crop_size, num_clips, num_crops, half_tick)
    feats = run_padded_batches(extractor, views.views, max(1, min(int(batch_size), len(views.views))))
    feats = feats.reshape((num_clips, num_crops) + feats.shape[1:])
    return feats.mean(axis=(0, 1)) if pool == "mean" else feats


@dataclasses.dataclass
class WindowFeatures:
    """Features of the sliding windows of one video.

    Attributes:
        features: (windows, ...) (or (windows, num_crops, ...) with pool="none").
        starts: (windows,) first frame of each window; start_times: the same in seconds.
        fps: used for the times (the container's, else 25, `fps_known` False); num_frames: decoded.
    """

    path: str
    features: np.ndarray
    starts: np.ndarray
    start_times: np.ndarray
    fps: float
    fps_known: bool
    num_frames: int
    short: bool


def window_features(
    model,
    path,
    geometry=None,
    mode="class_token",
    stride=None,
    num_crops=1,
    pool="mean",
    batch_size=8,
    progress=None,
    extractor=None,
):
    """Features of sliding windows over a whole video, one decoding pass, bounded memory.

    Args:
        stride: frames between window starts (default: half a window).
        num_crops: crops per window (1 or 3); pool="mean" averages them, "none" keeps them.
        progress: optional callable `progress(frames_decoded, total_frames)`.
        Others: as `video_features`.

    Returns:
        a `WindowFeatures`.
    """
    _check_pool(pool)
    extractor = _extractor(model, mode, extractor)
    geometry = geometry or _geometry(model, extractor.backbone)
    windows = SlidingWindows(path, geometry.clip_len, geometry.rate, geometry.crop_size, stride, num_crops, progress)
    starts, chunks = [], []
    for batch, clips in window_batches(windows, int(batch_size)):
        feats = run_padded_batches(extractor, clips, int(batch_size) * windows.num_crops)
        feats = feats.reshape((len(batch), windows.num_crops) + feats.shape[1:])
        chunks.append(feats.mean(axis=1) if pool == "mean" else feats)
        starts.extend(w.start for w in batch)
    fps_known = bool(windows.fps and windows.fps > 0)
    fps = float(windows.fps) if fps_known else DEFAULT_FPS
    starts = np.asarray(starts, np.int64)
    return WindowFeatures(
        windows.path,
        np.concatenate(chunks),
        starts,
        starts / fps,
        fps,
        fps_known,
        int(windows.num_frames),
        bool(windows.short),
    )


@dataclasses.dataclass
class FeatureSet:
    """Features of many videos, ready for `numpy.savez` (`arrays()`).

    Attributes:
        features: (rows, ...): one row per video (per-video mode) or per window (window mode).
        video_index: (rows,) which video (index into `paths`) each row belongs to.
        paths: the videos whose features are here, in input order.
        starts, start_times: (rows,) window start frames / seconds (window mode), else None.
        failures: [(path, reason)] of the videos that could not be decoded.
        settings: how the features were made (mode, views or stride, geometry, ...).
    """

    features: np.ndarray
    video_index: np.ndarray
    paths: list
    starts: np.ndarray = None
    start_times: np.ndarray = None
    failures: list = dataclasses.field(default_factory=list)
    settings: dict = dataclasses.field(default_factory=dict)

    def arrays(self):
        out = {"features": self.features, "video_index": self.video_index, "paths": np.asarray(self.paths, dtype=str)}
        if self.starts is not None:
            out["start_frame"] = self.starts
            out["start_time"] = self.start_times
        out["failed_paths"] = np.asarray([p for p, _ in self.failures], dtype=str)
        out["failed_reasons"] = np.asarray([r for _, r in self.failures], dtype=str)
        for key, value in self.settings.items():
            out[f"setting_{key}"] = np.asarray(value)
        return out


def extract_features(
    model,
    videos,
    geometry=None,
    mode="class_token",
    num_clips=10,
    num_crops=3,
    pool="mean",
    stride=None,
    batch_size=6,
    half_tick=False,
    progress=None,
):
    """Features of a list of videos; a video that cannot be decoded is recorded, not raised.

    Args:
        videos: paths, or (path as given, file to open) pairs.
        stride: None for per-video features from the test views (`video_features`); a number of
            frames for sliding windows (`window_features`, with `num_crops` crops per window).
        progress: optional callable `progress(videos_done, videos_total)`.
        Others: as `video_features`.

    Returns:
        a `FeatureSet`.
    """
    _check_pool(pool)
    extractor = FeatureExtractor(model, mode)
    geometry = geometry or _geometry(model, extractor.backbone)
    pairs = [(v, v) if isinstance(v, (str, bytes)) or not isinstance(v, (tuple, list)) else tuple(v) for v in videos]
    rows, index, paths, starts, times, failures = [], [], [], [], [], []
    for n, (name, file) in enumerate(pairs):
        try:
            if stride is None:
                feats = video_features(
                    model, file, geometry, mode, num_clips, num_crops, pool, batch_size, half_tick, extractor
                )[None]
            else:
                result = window_features(
                    model, file, geometry, mode, stride, num_crops, pool, batch_size, None, extractor
                )
                feats = result.features
                starts.append(result.starts)
                times.append(result.start_times)
        except VIDEO_ERRORS as err:
            failures.append((str(name), str(err)))
        else:
            rows.append(feats)
            index.append(np.full(len(feats), len(paths), np.int64))
            paths.append(str(name))
        if progress is not None:
            progress(n + 1, len(pairs))
    settings = {
        "mode": mode,
        "pool": pool,
        "clip_len": geometry.clip_len,
        "rate": geometry.rate,
        "crop_size": geometry.crop_size,
        "num_crops": num_crops,
    }
    if stride is None:
        settings.update(num_clips=num_clips, half_tick=bool(half_tick))
    else:
        settings.update(stride=int(stride))
    return FeatureSet(
        features=np.concatenate(rows) if rows else np.zeros((0,), np.float32),
        video_index=np.concatenate(index) if index else np.zeros((0,), np.int64),
        paths=paths,
        starts=(np.concatenate(starts) if starts else np.zeros((0,), np.int64)) if stride is not None else None,
        start_times=(np.concatenate(times) if times else np.zeros((0,))) if stride is not None else None,
        failures=failures,
        settings=settings,
    )


__all__ = [
    "FEATURE_MODES",
    "FeatureExtractor",
    "FeatureSet",
    "WindowFeatures",
    "backbone_of",
    "extract_features",
    "sequence_model",
    "video_features",
    "window_features",
]
