"""How many clips per second the data path delivers: training clips and 10 x 3 test views, per number
of loader threads, with the time split into decoding (`VideoReader`, the frames of the sampled window)
and the transform (resize, random rescale, crop, flip, normalisation; or the view crops).

`data_throughput(paths, ...)` runs what `VideoClipDataset` and `iter_views` run for every item (the
official training sampling with a random window per clip, `read_sampled`, `train_transform`; the
test windows decoded in one pass, `view_crops`), on `workers` threads like `vidtr train --workers`
(OpenCV and the numpy transforms release the GIL for most of their work). Item i draws its window from
a generator seeded by (seed, i), so two runs measure the same clips. `vidtr benchmark --data` prints
it; `python -m reproduce data` writes results/data.md with it and the reader comparisons.

Wall-clock numbers depend on what else runs on the machine: `os.getloadavg()` is recorded with every
result.
"""

import concurrent.futures
import os
import time

import numpy as np

from vidtr_keras.data import sampling, transforms
from vidtr_keras.data.video import VIDEO_EXTENSIONS, VideoReader, find_videos, read_sampled

MODES = ("train", "views")


def video_paths(source, root=None):
    """The videos of `source`: a folder (searched recursively), an annotation list (its paths under
    `root`, as `vidtr train --root` resolves them) or a single video file."""
    source = os.fspath(source)
    if os.path.isdir(source):
        paths = find_videos(source)
    elif os.path.isfile(source) and source.lower().endswith(VIDEO_EXTENSIONS):
        paths = [source]
    elif os.path.isfile(source):
        from vidtr_keras.data.annotations import read_annotations

        annotations = read_annotations(source)
        paths = [record.resolve(root) for record in annotations.records]
        if not paths and annotations.problems:
            problem = annotations.problems[0]
            raise ValueError(f"No video read from the list {source!r}: line {problem.line}: {problem.message}.")
    else:
        raise FileNotFoundError(f"No video folder, list or file at {source!r}.")
    if not paths:
        raise ValueError(f"No video found in {source!r}.")
    return paths


def _train_item(path, clip_len, rate, crop_size, seed, index):
    rng = np.random.default_rng([int(seed), int(index)])
    t0 = time.perf_counter()
    frames, _ = read_sampled(VideoReader(path), lambda n: sampling.train_clip_indices(n, clip_len, rate, rng))
    t1 = time.perf_counter()
    transforms.train_transform(frames, rng, crop_size)
    return t1 - t0, time.perf_counter() - t1, 1


def _views_item(path, clip_len, rate, crop_size, num_clips, num_crops):
    t0 = time.perf_counter()
    frames, _ = read_sampled(
        VideoReader(path), lambda n: sampling.view_clip_indices(n, clip_len, rate, num_clips)
    )  # every window's frames in one decoding pass
    t1 = time.perf_counter()
    for clip in frames:
        transforms.view_crops(clip, crop_size, num_crops)
    return t1 - t0, time.perf_counter() - t1, num_clips * num_crops


def data_throughput(
    paths,
    mode="train",
    workers=1,
    items=None,
    clip_len=8,
    rate=8,
    crop_size=224,
    num_clips=10,
    num_crops=3,
    seed=0,
    warm=True,
    on_progress=None,
):
    """Loads `items` training clips (mode "train") or the views of `items` videos (mode "views"),
    cycling over `paths`, on `workers` threads.

    Args:
        paths: video files.
        mode: "train" (one random 8x8-style window per item, the training transform) or "views"
            (num_clips windows x num_crops crops per item, the test transform).
        workers: loader threads.
        items: clips (train) or videos (views) to load; default: one per path, at least 8 clips.
        clip_len, rate, crop_size: the clip geometry (8 x 8 at 224 px: VidTr-S).
        num_clips, num_crops: test views per video.
        seed: item i's window comes from a generator seeded by (seed, i).
        warm: read each file once before timing, so the figures are those of a training run's later
            epochs: the first read of a long file decodes it to the end to check seeking in it
            (`vidtr_keras.data.video`); that pass is timed apart (`first_reads_s`).
        on_progress: optional callback(done, total).

    Returns:
        dict: `clips_per_s` (wall), `videos_per_s`, `decode_s` and `transform_s` (per clip, summed over
        threads: the CPU side of each), `wall_s`, `clips`, `items`, `workers`, `mode`, `loadavg`,
        `first_reads_s` (the warming pass over the files, 0.0 without `warm`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("data_throughput needs at least one video path.")
    if items is None:
        items = max(len(paths), 8) if mode == "train" else len(paths)
    items = int(items)
    if items < 1:
        raise ValueError(f"items must be >= 1, got {items}.")

    def work(i):
        path = paths[i % len(paths)]
        if mode == "train":
            return _train_item(path, clip_len, rate, crop_size, seed, i)
        return _views_item(path, clip_len, rate, crop_size, num_clips, num_crops)

    first_reads = 0.0
    if warm:
        start = time.perf_counter()
        for path in paths[:items]:
            VideoReader(path).read([0])
        first_reads = time.perf_counter() - start
    results = []
    start = time.perf_counter()
    if int(workers) == 1:
        for i in range(items):
            results.append(work(i))
            if on_progress is not None:
                on_progress(i + 1, items)
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=int(workers)) as pool:
            for done, result in enumerate(pool.map(work, range(items)), 1):
                results.append(result)
                if on_progress is not None:
                    on_progress(done, items)
    wall = time.perf_counter() - start
    clips = sum(r[2] for r in results)
    return {
        "mode": mode,
        "workers": int(workers),
        "items": items,
        "clips": clips,
        "wall_s": wall,
        "clips_per_s": clips / wall,
        "videos_per_s": items / wall if mode == "views" else None,
        "decode_s": sum(r[0] for r in results) / clips,
        "transform_s": sum(r[1] for r in results) / clips,
        "loadavg": os.getloadavg(),
        "first_reads_s": first_reads,
    }


__all__ = ["MODES", "data_throughput", "video_paths"]
