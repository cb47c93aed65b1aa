"""A procedural video benchmark whose labels need temporal reasoning: five small tasks, generated
from a seed with numpy only (the same clips on every backend), no download.

Every clip is (frames, size, size, 3) uint8 RGB over a cluttered background: a random grey level, a
static noise texture, two to four static distractor rectangles of random colours, and fresh pixel
noise in every frame, so that no single pixel gives the answer. Objects have random colours (drawn
from the same distribution in every class) and random positions.

Tasks (`TASKS`):
- ``direction``: one square moving right, left, down or up (random start, perpendicular position and
  speed). No single frame can tell; reversing time swaps right/left and down/up.
- ``order``: two events far apart in time, a filled square A and a hollow square B, each shown for
  one or two frames, one in the first third of the clip and the other in the last third: A before B
  or B before A. Reversing time swaps the label.
- ``count``: 1 to 4 flashes (a disc shown for one frame, at a random place), in frames at least two
  apart spread over the clip: long-range aggregation. Reversing time keeps the count.
- ``motion``: fast local motion: a square that jitters in place (a fresh random step of 2-3 px every
  frame) or drifts smoothly (a constant step of 2-3 px in one direction). The 3-D CNN's home ground
  in the paper's error analysis. Reversing time keeps the label.
- ``static``: the shape of a wandering object (square, disc, plus, triangle): the static-appearance
  control, solvable from any one frame. Reversing or shuffling frames keeps the label.

Splits come from disjoint seed streams (`numpy.random.SeedSequence([seed, split, index])`), labels are
balanced (clip i of a split has label i mod classes, in a seeded random order).

Example:
>>> from vidtr_keras.data import procedural
>>> clips, labels = procedural.generate("direction", 8, seed=0)
>>> clips.shape, labels.tolist()[:4]
((8, 8, 32, 32, 3), [...])
>>> data = procedural.ProceduralDataset("count", "train", 256, batch_size=32)  # keras PyDataset
"""

import dataclasses
import math
import os

import numpy as np

from vidtr_keras.data.batches import ArrayBatches
from vidtr_keras.data.synthetic import write_video
from vidtr_keras.data.transforms import normalize

SPLITS = {"train": 0, "val": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class Task:
    """A benchmark task: class names, what it needs and how time reversal maps its labels."""

    name: str
    classes: tuple
    description: str
    temporal: bool
    reversed_label: tuple  # label of the time-reversed clip, per label


TASKS = {
    "direction": Task(
        "direction", ("right", "left", "down", "up"), "direction of motion (no single frame tells)", True, (1, 0, 3, 2)
    ),
    "order": Task("order", ("a_before_b", "b_before_a"), "order of two events far apart in time", True, (1, 0)),
    "count": Task(
        "count", ("one", "two", "three", "four"), "count 1-4 flashes spread over the clip", True, (0, 1, 2, 3)
    ),
    "motion": Task("motion", ("jitter", "drift"), "fast local motion: jitter in place vs smooth drift", True, (0, 1)),
    "static": Task(
        "static", ("square", "disc", "plus", "triangle"), "static appearance: the object's shape", False, (0, 1, 2, 3)
    ),
}
MIN_FRAMES = {"direction": 4, "order": 6, "count": 7, "motion": 4, "static": 1}


def _task(name):
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; the tasks are {', '.join(TASKS)}.")
    return TASKS[name]


def _check(task, frames, size):
    if int(frames) < MIN_FRAMES[task]:
        raise ValueError(f"The {task!r} task needs at least {MIN_FRAMES[task]} frames, got frames={frames}.")
    if int(size) < 16:
        raise ValueError(f"size must be at least 16 px, got {size}.")


def shape_mask(shape, side):
    """A boolean (side, side) mask of one of the shapes: square, hollow, disc, plus, triangle."""
    yy, xx = np.mgrid[:side, :side]
    c = (side - 1) / 2.0
    if shape == "square":
        return np.ones((side, side), bool)
    if shape == "hollow":
        # A 2-px border from 6 px on, 1 px below: a 2-px border on a 4-px square (the order task's size
        # at 16 px) leaves no hole, and the hollow square would be the filled one.
        border = 2 if side >= 6 else 1
        m = np.ones((side, side), bool)
        m[border:-border, border:-border] = False
        return m
    if shape == "disc":
        return (yy - c) ** 2 + (xx - c) ** 2 <= (side / 2.0) ** 2
    if shape == "plus":
        w = max(1, side // 3)
        lo = (side - w) // 2
        return ((xx >= lo) & (xx < lo + w)) | ((yy >= lo) & (yy < lo + w))
    if shape == "triangle":
        return np.abs(xx - c) <= (yy + 1) / 2.0
    raise ValueError(f"Unknown shape {shape!r}.")


def _colour(rng):
    """A saturated random colour, far from the grey background."""
    colour = rng.uniform(0, 80, 3)
    colour[rng.integers(3)] = rng.uniform(200, 255)
    if rng.random() < 0.5:
        colour[(rng.integers(1, 3) + np.argmax(colour)) % 3] = rng.uniform(150, 255)
    return colour


def _background(rng, frames, size, clutter):
    base = rng.uniform(90, 150)
    if not clutter:
        return np.full((frames, size, size, 3), base, np.float32)
    texture = rng.normal(0, 12, (size, size, 3))
    background = np.broadcast_to(base + texture, (frames, size, size, 3)).astype(np.float32).copy()
    for _ in range(int(rng.integers(2, 5))):
        h, w = (int(v) for v in rng.integers(2, 6, 2))
        top, left = (int(v) for v in rng.integers(0, size - 5, 2))
        background[:, top : top + h, left : left + w] = rng.uniform(40, 220, 3) * 0.6 + base * 0.4
    return background


def _side(rng, low, high, size):
    """An object side drawn from [low, high) px at 32 px, scaled with the frame size (at least 4 px)."""
    return max(4, int(round(int(rng.integers(low, high)) * size / 32)))


def _draw(frame, mask, top, left, colour):
    side = mask.shape[0]
    top, left = int(round(top)), int(round(left))
    size = frame.shape[0]
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + side, size), min(left + side, size)
    if t0 >= t1 or l0 >= l1:
        return
    sub = mask[t0 - top : t1 - top, l0 - left : l1 - left]
    frame[t0:t1, l0:l1][sub] = colour


def _direction(rng, label, frames, size, canvas):
    side = _side(rng, 5, 8, size)
    fastest = min(3.0, (size - side - 1) / (frames - 1))
    speed = rng.uniform(min(1.5, fastest / 2), fastest)
    travel = speed * (frames - 1)
    start = rng.uniform(0, size - side - travel)
    across = rng.uniform(0, size - side)
    sign = 1.0 if label in (0, 2) else -1.0
    along = start + (np.arange(frames) * speed if sign > 0 else travel - np.arange(frames) * speed)
    mask, colour = shape_mask("square", side), _colour(rng)
    for t in range(frames):
        top, left = (across, along[t]) if label in (0, 1) else (along[t], across)
        _draw(canvas[t], mask, top, left, colour)


def _order(rng, label, frames, size, canvas):
    third = max(1, frames // 3)
    side = _side(rng, 6, 9, size)
    spans = []
    for window_start in (0, frames - third):
        length = int(rng.integers(1, 3))
        start = window_start + int(rng.integers(0, max(1, third - length + 1)))
        spans.append(range(start, min(start + length, frames)))
    shapes = ("square", "hollow") if label == 0 else ("hollow", "square")
    for shape, span in zip(shapes, spans):
        mask, colour = shape_mask(shape, side), _colour(rng)
        top, left = rng.uniform(0, size - side, 2)
        for t in span:
            _draw(canvas[t], mask, top, left, colour)


def _count(rng, label, frames, size, canvas):
    n = label + 1
    while True:  # frames at least two apart: distinct flashes
        chosen = np.sort(rng.choice(frames, n, replace=False))
        if n == 1 or np.min(np.diff(chosen)) >= 2:
            break
    for t in chosen:
        side = _side(rng, 5, 8, size)
        top, left = rng.uniform(0, size - side, 2)
        _draw(canvas[t], shape_mask("disc", side), top, left, _colour(rng))


def _motion(rng, label, frames, size, canvas):
    side = _side(rng, 5, 8, size)
    steps = rng.uniform(2.0, 3.0, frames - 1) * size / 32
    if label == 0:  # jitter: a fresh direction each frame, pulled back to its centre
        angles = rng.uniform(0, 2 * math.pi, frames - 1)
    else:  # drift: one direction
        angles = np.full(frames - 1, rng.uniform(0, 2 * math.pi))
    moves = np.stack([steps * np.sin(angles), steps * np.cos(angles)], axis=1)
    path = np.concatenate([np.zeros((1, 2)), np.cumsum(moves, axis=0)])
    if label == 0:
        path = path - np.linspace(0, 1, frames)[:, None] * path[-1]  # ends where it started
    low, high = path.min(axis=0), path.max(axis=0)
    origin = rng.uniform(-low, np.maximum(-low, size - side - high))
    mask, colour = shape_mask("square", side), _colour(rng)
    for t in range(frames):
        _draw(canvas[t], mask, *(origin + path[t]), colour)


def _static(rng, label, frames, size, canvas):
    side = _side(rng, 7, 10, size)
    shape = TASKS["static"].classes[label]
    mask, colour = shape_mask(shape, side), _colour(rng)
    position = rng.uniform(0, size - side, 2)
    for t in range(frames):
        _draw(canvas[t], mask, *position, colour)
        position = np.clip(position + rng.uniform(-1.5, 1.5, 2), 0, size - side)


_MAKERS = {"direction": _direction, "order": _order, "count": _count, "motion": _motion, "static": _static}


def make_clip(task, label, rng, frames=8, size=32, clutter=True):
    """One clip of `task` with class `label`, drawn from the numpy Generator `rng`:
    (frames, size, size, 3) uint8. `clutter=False` draws the objects alone on a flat grey background
    (no texture, distractors or noise), for tests that read the scene back from the pixels."""
    spec = _task(task)
    _check(task, frames, size)
    if not 0 <= int(label) < len(spec.classes):
        raise ValueError(f"label {label} is outside the {len(spec.classes)} classes of the {task!r} task.")
    frames, size = int(frames), int(size)
    canvas = _background(rng, frames, size, clutter)
    _MAKERS[task](rng, int(label), frames, size, canvas)
    if clutter:
        canvas += rng.normal(0, 10, canvas.shape)
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def split_rng(seed, split, index):
    """The generator of clip `index` of `split`: disjoint streams per split and clip."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}.")
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS[split], int(index)]))


def split_labels(task, count, seed=0, split="train"):
    """Balanced labels of a split: each class count/classes times (+1 for the first count mod classes),
    in a seeded random order."""
    classes = len(_task(task).classes)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}.")
    labels = np.arange(int(count)) % classes
    order = np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS[split], 2**31 - 1])).permutation(int(count))
    return labels[order]


def generate(task, count, seed=0, split="train", frames=8, size=32, clutter=True):
    """`count` clips of a split: (clips (count, frames, size, size, 3) uint8, labels (count,) int32).

    Clip i depends only on (seed, split, i) (and the split's size, which fixes the label order)."""
    if int(count) < 1:
        raise ValueError(f"count must be positive, got {count}.")
    labels = split_labels(task, count, seed, split)
    clips = np.stack(
        [make_clip(task, labels[i], split_rng(seed, split, i), frames, size, clutter) for i in range(int(count))]
    )
    return clips, labels.astype(np.int32)


class ProceduralDataset(ArrayBatches):
    """A split of a procedural task as a Keras `PyDataset` of (clips, labels) batches.

    Clips are generated once (numpy, deterministic from `seed`) and normalised as the video pipeline
    does (ImageNet mean/std), so a model trained here runs on the written videos and vice versa.

    Args:
        task: one of `TASKS`.
        split: "train", "val" or "test" (disjoint seed streams).
        count: clips in the split.
        batch_size: clips per batch.
        seed: benchmark seed.
        frames, size: clip length and side in pixels.
        shuffle: a new seeded order every epoch (call `on_epoch_end`, as `fit` does).
        **kwargs: `keras.utils.PyDataset` arguments (workers, ...).
    """

    def __init__(
        self, task, split="train", count=256, batch_size=32, seed=0, frames=8, size=32, shuffle=None, **kwargs
    ):
        super().__init__(batch_size, seed, 7, split == "train" if shuffle is None else shuffle, **kwargs)
        self.task = task
        self.split = split
        self._start(*generate(task, count, seed, split, frames, size))

    @property
    def clips(self):
        """The generated clips (before normalisation)."""
        return self.inputs

    @clips.setter
    def clips(self, value):
        self.inputs = value

    @property
    def num_classes(self):
        return len(TASKS[self.task].classes)

    def arrays(self):
        """(normalised clips float32, labels int32) of the whole split, in generation order."""
        return normalize(self.clips), self.labels


def write_benchmark(root, task, counts=None, seed=0, frames=8, size=32, extension=".avi", fps=8.0):
    """Writes a task as lossless videos (FFV1) plus official annotation lists, for `vidtr train` and
    `vidtr evaluate`; returns {name: path}.

    Layout: `videos/<split>/<class>_<n>.avi`; `train.txt`, `val.txt`, `test.txt` (`path num_frames
    label`, relative to `root`); `classes.txt`. Each video is exactly one clip, so train and evaluate
    with `--rate 1` and crops of `size` px. The direction task's right/left classes are mirror images:
    train it without horizontal flips.
    """
    spec = _task(task)
    counts = {"train": 512, "val": 128, "test": 128} if counts is None else dict(counts)
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f"Unknown split(s) {sorted(unknown)}; use {tuple(SPLITS)}.")
    root = os.fspath(root)
    written = {"root": root}
    for split, count in counts.items():
        clips, labels = generate(task, count, seed, split, frames, size)
        rows = []
        for i, (clip, label) in enumerate(zip(clips, labels)):
            relative = f"videos/{split}/{spec.classes[label]}_{i:05d}{extension}"
            write_video(os.path.join(root, relative), clip, fps=fps)
            rows.append(f"{relative} {len(clip)} {int(label)}\n")
        path = os.path.join(root, f"{split}.txt")
        with open(path, "w") as f:
            f.writelines(rows)
        written[f"{split}.txt"] = path
    path = os.path.join(root, "classes.txt")
    with open(path, "w") as f:
        f.writelines(f"{name}\n" for name in spec.classes)
    written["classes.txt"] = path
    return written


__all__ = [
    "ProceduralDataset",
    "SPLITS",
    "TASKS",
    "Task",
    "generate",
    "make_clip",
    "shape_mask",
    "split_labels",
    "split_rng",
    "write_benchmark",
]
