"""Clips and views from video files, and a `keras.utils.PyDataset` of training/validation batches.

- `load_train_clip`: the official training sample (random window, the released configs' augmentation).
- `load_val_clip`: the official validation-during-training sample (random window, centre crop).
- `load_views`: the test views of one video, num_clips windows x num_crops crops (10 x 3 = 30).
- `load_centre_clip`: the single centre view of one video (what `vidtr explain` shows the model).
- `VideoClipDataset`: batches for `model.fit`; every random choice of item i in epoch e comes from a
  generator seeded by (seed, e, i), and the order of epoch e from (seed, e), so a run is repeatable
  whatever the number and kind (threads or processes) of workers, and a resumed run continues with
  exactly the data an uninterrupted run would have seen (`set_epoch`).
- `iter_views`: the views of a list of videos, decoded by a thread pool, in list order, with the
  error instead of the views for a video that cannot be decoded.

Clips are float32 (frames, crop, crop, 3), normalised with the ImageNet mean/std, channels last as
the models take them.
"""

import concurrent.futures
import dataclasses
import math
import multiprocessing
import os
import queue
import threading
import warnings

import keras
import numpy as np

from vidtr_keras.data import sampling, transforms
from vidtr_keras.data.video import VideoDecodeError, VideoReader, read_sampled

# Errors that mean "this video cannot be used" (reported and, in training, replaced by another one).
VIDEO_ERRORS = (VideoDecodeError, FileNotFoundError, OSError, ValueError)
try:  # OpenCV is imported lazily elsewhere; its own error type joins the list when it is installed
    import cv2 as _cv2

    VIDEO_ERRORS = VIDEO_ERRORS + (_cv2.error,)
except ImportError:  # pragma: no cover
    pass


@dataclasses.dataclass
class ClipViews:
    """The test views of one video.

    Attributes:
        views: (num_clips * num_crops, clip_len, crop, crop, 3) float32 (uint8 pixels when loaded
            with `normalized=False`); view k is window k // num_crops, crop k % num_crops (start,
            centre, end of the long side).
        indices: (num_clips, clip_len) frame indices of the windows.
        num_frames: frames in the video (the container's count, corrected to the frames that exist
            when the stream ends before a window's frame).
        short: the video has fewer frames than one window (its clips repeat frames).
    """

    views: np.ndarray
    indices: np.ndarray
    num_frames: int
    short: bool
    size: tuple = None


def load_train_clip(
    path, clip_len, rate, crop_size, rng, short_side=None, scale_range=transforms.RESCALE_RANGE, flip=True
):
    """One augmented training clip (clip_len, crop, crop, 3) float32 and its frame indices."""
    reader = VideoReader(path)
    frames, indices = read_sampled(reader, lambda n: sampling.train_clip_indices(n, clip_len, rate, rng))
    clip = transforms.train_transform(frames, rng, crop_size, short_side, scale_range=scale_range, flip=flip)
    return clip, indices


def load_val_clip(path, clip_len, rate, crop_size, rng, short_side=None):
    """One validation clip: the official validation mode (random window, centre crop)."""
    reader = VideoReader(path)
    frames, indices = read_sampled(reader, lambda n: sampling.train_clip_indices(n, clip_len, rate, rng))
    return transforms.val_transform(frames, crop_size, short_side), indices


def load_views(path, clip_len, rate, crop_size, num_clips=10, num_crops=3, half_tick=False, normalized=True):
    """The num_clips x num_crops test views of a video (see `ClipViews`)."""
    reader = VideoReader(path)
    frames, indices = read_sampled(
        reader, lambda n: sampling.view_clip_indices(n, clip_len, rate, num_clips, half_tick)
    )
    views = [transforms.view_crops(clip, crop_size, num_crops, normalized=normalized) for clip in frames]
    views = np.concatenate(views, axis=0)
    return ClipViews(
        views,
        indices,
        reader.num_frames,
        sampling.is_short(reader.num_frames, clip_len, rate),
        (reader.height, reader.width),
    )


def load_centre_clip(path, clip_len, rate, crop_size, normalized=True):
    """The one window centred in the video (`sampling.centre_clip_indices`), short side -> `crop_size`
    and centre-cropped (the single-view test transform): a `ClipViews` of one view, (1, clip_len, crop,
    crop, 3), uint8 pixels with `normalized=False`."""
    reader = VideoReader(path)
    frames, indices = read_sampled(reader, lambda n: sampling.centre_clip_indices(n, clip_len, rate))
    views = transforms.view_crops(np.asarray(frames), crop_size, num_crops=1, normalized=normalized)
    return ClipViews(
        views,
        indices[None],
        reader.num_frames,
        sampling.is_short(reader.num_frames, clip_len, rate),
        (reader.height, reader.width),
    )


def _entropy(seed, *parts):
    return np.random.default_rng([int(seed) % 2**63, *[int(p) for p in parts]])


class VideoClipDataset(keras.utils.PyDataset):
    """Batches (clips, labels) of an annotation list for `model.fit` / `model.evaluate`.

    Args:
        records: `VideoRecord`s (e.g. `read_annotations(...).records`).
        root: the directory the list's paths are relative to.
        clip_len, rate: frames per clip and sampling rate (the window spans clip_len x rate frames).
        crop_size: side of the square crops (the model's image size).
        batch_size: clips per batch.
        num_classes: number of classes (needed for multi-label targets).
        multi_label: targets are multi-hot float vectors (num_classes,) instead of class indices.
        training: True: random windows, augmentation and a new order every epoch; False: the
            official validation sample (a random window drawn once per video from the seed, centre
            crop), in list order, identical every epoch.
        seed: makes the run repeatable.
        short_side: training resize (default: 256/224 x crop_size, the official ratio).
        scale_range: random rescale range; None turns it off.
        flip: random horizontal flips.
        drop_remainder: drop the last incomplete batch (default: True when training, so every step
            has the same shape: one XLA compilation, equal data-parallel splits).
        max_substitutions: in training a video that cannot be decoded is replaced by another one
            drawn from the same generator (as the official loader does), at most this many times per
            item; every failure is recorded in `failures` (never silent). When not training it raises.
        workers, use_multiprocessing, max_queue_size: see `keras.utils.PyDataset`: `workers` threads,
            or with `use_multiprocessing` worker processes, load the batches ahead of the training
            step. Decoding and augmentation are partly pure Python (the GIL), so threads stop scaling
            where processes still do. Keras starts the processes of an epoch's pool when the epoch
            begins (after `set_epoch`), with `multiprocessing`'s default start method (fork on Linux
            before Python 3.14); a batch depends only on (seed, epoch, batch), so both kinds and any
            number give the same batches (spec_tests/data/test_process_workers.py).

    Attributes:
        epoch: the epoch whose order and augmentation `__getitem__` serves; `set_epoch` sets it.
        failures: {path: reason} of the videos that could not be decoded (worker processes send
            theirs to this process through a queue).
    """

    def __init__(
        self,
        records,
        root=None,
        clip_len=8,
        rate=8,
        crop_size=224,
        batch_size=8,
        num_classes=None,
        multi_label=False,
        training=True,
        seed=0,
        short_side=None,
        scale_range=transforms.RESCALE_RANGE,
        flip=True,
        drop_remainder=None,
        max_substitutions=10,
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
    ):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        self.records = list(records)
        if not self.records:
            raise ValueError("The dataset has no video.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if multi_label and not num_classes:
            raise ValueError("Multi-label targets need num_classes.")
        self.root = root
        self.clip_len = int(clip_len)
        self.rate = int(rate)
        self.crop_size = int(crop_size)
        self.batch_size = int(batch_size)
        self.num_classes = num_classes
        self.multi_label = bool(multi_label)
        self.training = bool(training)
        self.seed = int(seed)
        self.short_side = short_side
        self.scale_range = scale_range
        self.flip = flip
        self.drop_remainder = self.training if drop_remainder is None else bool(drop_remainder)
        self.max_substitutions = int(max_substitutions)
        self.epoch = 0
        self._failures = {}
        self._lock = threading.Lock()
        # Worker processes report failures through this queue (their own dict dies with them). It is
        # inherited (fork) or handed over with the dataset when the pool starts (spawn, forkserver).
        self._owner = os.getpid()
        self._failure_queue = multiprocessing.Queue() if use_multiprocessing else None
        if len(self) == 0:
            raise ValueError(
                f"{len(self.records)} video(s) make no full batch of {self.batch_size}: lower the batch size."
            )

    def __len__(self):
        if self.drop_remainder:
            return len(self.records) // self.batch_size
        return math.ceil(len(self.records) / self.batch_size)

    def set_epoch(self, epoch):
        """Serve epoch `epoch`'s order and augmentation from now on."""
        self.epoch = int(epoch)

    def order(self, epoch=None):
        """The record order of an epoch (a permutation when training, the list order otherwise)."""
        if not self.training:
            return np.arange(len(self.records))
        epoch = self.epoch if epoch is None else epoch
        return _entropy(self.seed, 2, epoch).permutation(len(self.records))

    def _target(self, record):
        if self.multi_label:
            target = np.zeros(self.num_classes, np.float32)
            target[list(record.labels)] = 1.0
            return target
        return np.int32(record.label)

    def _load(self, index, rng):
        path = self.records[index].resolve(self.root)
        if self.training:
            clip, _ = load_train_clip(
                path, self.clip_len, self.rate, self.crop_size, rng, self.short_side, self.scale_range, self.flip
            )
        else:
            clip, _ = load_val_clip(path, self.clip_len, self.rate, self.crop_size, rng, self.short_side)
        return clip

    @property
    def failures(self):
        """{path: reason} of the videos that could not be decoded, in this process and its workers."""
        if self._failure_queue is not None and os.getpid() == self._owner:
            with self._lock:
                while True:
                    try:
                        path, reason = self._failure_queue.get_nowait()
                    except queue.Empty:
                        break
                    self._failures[path] = reason
        return self._failures

    def _record_failure(self, index, err):
        record = self.records[index]
        with self._lock:
            first = record.path not in self._failures
            self._failures[record.path] = str(err)
        if first:
            if self._failure_queue is not None and os.getpid() != self._owner:
                self._failure_queue.put((record.path, str(err)))
            warnings.warn(f"{record.where}: {err}", stacklevel=2)

    def get_item(self, index, epoch=None):
        """(clip, target) of record `index` in `epoch` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        rng = _entropy(self.seed, 0, epoch, index) if self.training else _entropy(self.seed, 1, index)
        tried = index
        for _ in range(self.max_substitutions + 1):
            try:
                return self._load(tried, rng), self._target(self.records[tried])
            except VIDEO_ERRORS as err:
                self._record_failure(tried, err)
                if not self.training:
                    raise
                tried = int(rng.integers(len(self.records)))
        raise ValueError(
            f"{self.max_substitutions + 1} videos in a row could not be decoded (last: "
            f"{self.records[tried].where}); check the list and the root directory."
        )

    def __getitem__(self, batch):
        if batch < 0 or batch >= len(self):
            raise IndexError(f"Batch {batch} out of range (the dataset has {len(self)}).")
        epoch = self.epoch
        order = self.order(epoch)[batch * self.batch_size : (batch + 1) * self.batch_size]
        items = [self.get_item(int(i), epoch) for i in order]
        clips = np.stack([clip for clip, _ in items])
        targets = np.stack([target for _, target in items])
        return clips, targets

    def on_epoch_end(self):
        # Epochs are set explicitly (`set_epoch`): Keras also calls this once before the first epoch.
        # Collect what the worker processes reported, so that their queue never fills up.
        self.failures  # noqa: B018

    def __getstate__(self):  # for worker processes (use_multiprocessing with the spawn start method)
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def iter_views(
    records, root=None, clip_len=8, rate=8, crop_size=224, num_clips=10, num_crops=3, half_tick=False, workers=1
):
    """Yields (record, ClipViews, None) or (record, None, error message) for every record, in order.

    Decoding runs in `workers` threads (OpenCV releases the GIL) at most 2 x workers videos ahead.
    """
    records = list(records)

    def work(record):
        try:
            return (
                record,
                load_views(record.resolve(root), clip_len, rate, crop_size, num_clips, num_crops, half_tick),
                None,
            )
        except VIDEO_ERRORS as err:
            return record, None, str(err)

    if workers <= 1:
        for record in records:
            yield work(record)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        position = 0
        while position < len(records) or pending:
            while position < len(records) and len(pending) < 2 * workers:
                pending.append(pool.submit(work, records[position]))
                position += 1
            yield pending.pop(0).result()


__all__ = [
    "ClipViews",
    "VideoClipDataset",
    "iter_views",
    "load_centre_clip",
    "load_train_clip",
    "load_val_clip",
    "load_views",
]
