"""Synthetic videos whose frames say which frame they are: for tests, demos and smoke runs.

Every frame has a flat background whose red and green values encode the frame index
(red = 16 (i mod 16) + 8, green = 16 (i div 16 mod 16) + 8: indices modulo 256, in steps wide enough
to survive lossy MPEG-4 and VP8 at default quality), a blue ramp across
the width (0 at the left edge, 255 at the right) that tells where a crop was taken, and a square moving
in the direction of the video's class (class k of K moves at angle 2 pi k / K), starting where it
crosses the frame without touching an edge when the video is short enough, so that every frame moves
the way the label says; longer videos bounce off the edges. `decode_frame_index` reads the index
back from any crop or resize of a frame (the median of the background survives both); with the
lossless FFV1 codec (.avi, .mkv) it is exact.

`make_demo_dataset` writes a small classification dataset in the official list format, plus a test
list with a corrupt file and a video shorter than one clip to show how evaluation reports them.
"""

import math
import os

import numpy as np

CODE_STEP = 16
CODE_LEVELS = 256 // CODE_STEP
FOURCC_BY_EXTENSION = {".avi": "FFV1", ".mkv": "FFV1", ".mp4": "mp4v", ".webm": "VP80", ".mov": "mp4v"}


def frame_code(index):
    """(red, green) background values of frame `index`."""
    index = int(index)
    low, high = index % CODE_LEVELS, (index // CODE_LEVELS) % CODE_LEVELS
    return CODE_STEP * low + CODE_STEP // 2, CODE_STEP * high + CODE_STEP // 2


def decode_frame_index(frame):
    """The frame index (modulo 256) encoded in a (H, W, 3) RGB frame (uint8 or float pixel values)."""
    frame = np.asarray(frame, np.float32)
    low = int(round((float(np.median(frame[..., 0])) - CODE_STEP // 2) / CODE_STEP)) % CODE_LEVELS
    high = int(round((float(np.median(frame[..., 1])) - CODE_STEP // 2) / CODE_STEP)) % CODE_LEVELS
    return low + CODE_LEVELS * high


def decode_left_column(frame, source_width, resized_width=None):
    """Which column of the source frame the left edge of a crop came from (from the blue ramp)."""
    blue = float(np.median(np.asarray(frame, np.float32)[:, 0, 2]))
    column = blue / 255.0 * (source_width - 1)
    if resized_width is not None:
        column *= resized_width / source_width
    return column


def synthetic_frames(num_frames, height=32, width=40, label=0, num_classes=4, seed=0):
    """(num_frames, height, width, 3) uint8 RGB frames (see the module docstring)."""
    rng = np.random.default_rng(seed)
    frames = np.empty((int(num_frames), int(height), int(width), 3), np.uint8)
    ramp = np.round(np.linspace(0, 255, int(width))).astype(np.uint8)
    side = max(3, min(height, width) // 4)
    angle = 2 * math.pi * int(label) / max(1, int(num_classes))
    speed = 1.5
    dx, dy = speed * math.cos(angle), speed * math.sin(angle)
    x, y = _start(rng, width - side, dx, num_frames), _start(rng, height - side, dy, num_frames)
    for i in range(int(num_frames)):
        red, green = frame_code(i)
        frames[i, :, :, 0] = red
        frames[i, :, :, 1] = green
        frames[i, :, :, 2] = ramp[None, :]
        top, left = int(round(y)), int(round(x))
        frames[i, top : top + side, left : left + side] = (255, 255, 0)
        x, y = x + dx, y + dy
        if not 0 <= x <= width - side:
            dx, x = -dx, min(max(x, 0), width - side)
        if not 0 <= y <= height - side:
            dy, y = -dy, min(max(y, 0), height - side)
    return frames


def _start(rng, span, step, num_frames):
    """A start coordinate in [0, span] from which `num_frames` frames moving `step` a frame stay inside
    [0, span] when the path fits: then the square moves the way its class says in every frame (a bounce
    mid-video would show the opposite direction for part of it, a mislabelled clip). Longer paths bounce."""
    travel = abs(step) * (int(num_frames) - 1)
    if travel > span:
        return rng.uniform(0, span)
    low = travel if step < 0 else 0.0
    return rng.uniform(low, low + span - travel)


def write_video(path, frames, fps=25.0, fourcc=None):
    """Writes RGB uint8 frames (T, H, W, 3) with OpenCV; the codec follows the extension (FFV1 for
    .avi/.mkv, lossless) unless `fourcc` is given. Returns the path."""
    import cv2

    path = os.fspath(path)
    frames = np.asarray(frames, np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"Expected (frames, height, width, 3) uint8 frames, got shape {frames.shape}.")
    extension = os.path.splitext(path)[1].lower()
    fourcc = fourcc or FOURCC_BY_EXTENSION.get(extension)
    if fourcc is None:
        raise ValueError(f"No default codec for {extension!r}; give fourcc (e.g. 'FFV1', 'mp4v', 'MJPG').")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), float(fps), (int(width), int(height)))
    if not writer.isOpened():
        raise ValueError(f"OpenCV cannot write {fourcc} video to {path!r} (codec not available in this build?).")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def write_synthetic_video(path, num_frames, height=32, width=40, label=0, num_classes=4, seed=0, fps=25.0, fourcc=None):
    """`synthetic_frames` written to `path`; returns the path."""
    return write_video(path, synthetic_frames(num_frames, height, width, label, num_classes, seed), fps, fourcc)


def class_names_for(num_classes):
    if num_classes == 4:
        return ["moving_right", "moving_down", "moving_left", "moving_up"]
    return [f"moving_{round(360 * k / num_classes)}deg" for k in range(num_classes)]


def make_demo_dataset(
    root,
    num_classes=4,
    videos_per_class=6,
    frames=(24, 40),
    height=32,
    width=40,
    extension=".avi",
    val_per_class=2,
    seed=0,
):
    """Writes a demo dataset under `root`; returns {name: path} of what it wrote.

    Layout: `videos/<class>_<n>.avi`; `train.txt` and `val.txt` (official format
    `path num_frames label`, paths relative to `root`); `classes.txt`; `test.txt` = the validation
    videos plus `videos/corrupt.avi` (not a video) and `videos/short.avi` (4 frames, shorter than a
    clip), to see how `vidtr evaluate` reports them; `test.csv` = the same as `path,label` CSV.
    """
    root = os.fspath(root)
    if val_per_class >= videos_per_class:
        raise ValueError(f"val_per_class ({val_per_class}) must be below videos_per_class ({videos_per_class}).")
    rng = np.random.default_rng(seed)
    names = class_names_for(num_classes)
    os.makedirs(os.path.join(root, "videos"), exist_ok=True)
    train, val = [], []
    for label in range(num_classes):
        for n in range(videos_per_class):
            count = int(rng.integers(frames[0], frames[1] + 1))
            relative = f"videos/{names[label]}_{n:02d}{extension}"
            write_synthetic_video(
                os.path.join(root, relative), count, height, width, label, num_classes, seed=int(rng.integers(2**31))
            )
            (val if n < val_per_class else train).append((relative, count, label))
    short = f"videos/short{extension}"
    write_synthetic_video(os.path.join(root, short), 4, height, width, 0, num_classes, seed=seed)
    corrupt = f"videos/corrupt{extension}"
    with open(os.path.join(root, corrupt), "wb") as f:
        f.write(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    written = {"root": root}

    def write_list(name, rows):
        path = os.path.join(root, name)
        with open(path, "w") as f:
            f.writelines(f"{p} {c} {label}\n" for p, c, label in rows)
        written[name] = path

    write_list("train.txt", train)
    write_list("val.txt", val)
    test = val + [(short, 4, 0), (corrupt, 0, 0)]
    write_list("test.txt", test)
    with open(os.path.join(root, "test.csv"), "w") as f:
        f.write("path,label\n")
        f.writelines(f"{p},{names[label]}\n" for p, _, label in test)
    written["test.csv"] = os.path.join(root, "test.csv")
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.writelines(f"{name}\n" for name in names)
    written["classes.txt"] = os.path.join(root, "classes.txt")
    return written


__all__ = [
    "decode_frame_index",
    "decode_left_column",
    "frame_code",
    "make_demo_dataset",
    "synthetic_frames",
    "write_synthetic_video",
    "write_video",
]
