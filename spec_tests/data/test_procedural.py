"""The procedural benchmark (vidtr_keras.data.procedural): labels that the pixels bear out, time
reversal and frame shuffling, determinism across backends, splits, the PyDataset and the video writer.

The scene readers below look only at the pixels of clutter-free clips (objects alone on a flat grey
background): they are independent of the generator's code paths, so "the label is what the clip
shows" is tested, not restated."""

import hashlib

import numpy as np
import pytest

from vidtr_keras.data import procedural
from vidtr_keras.data.annotations import read_annotations
from vidtr_keras.data.video import VideoReader

TASKS = tuple(procedural.TASKS)


def object_mask(frame):
    """Pixels of saturated colour (objects), on a flat grey background."""
    frame = frame.astype(np.int32)
    return frame.max(-1) - frame.min(-1) > 60


def centroids(clip):
    out = []
    for frame in clip:
        ys, xs = np.nonzero(object_mask(frame))
        out.append((ys.mean(), xs.mean()) if len(ys) else None)
    return out


def read_direction(clip):
    (y0, x0), (y1, x1) = centroids(clip)[0], centroids(clip)[-1]
    dy, dx = y1 - y0, x1 - x0
    if abs(dx) > abs(dy):
        return 0 if dx > 0 else 1
    return 2 if dy > 0 else 3


def shown_frames(clip):
    return [t for t, frame in enumerate(clip) if object_mask(frame).any()]


def is_hollow(frame):
    ys, xs = np.nonzero(object_mask(frame))
    cy, cx = int(round(ys.mean())), int(round(xs.mean()))
    return not object_mask(frame)[cy, cx]


def read_order(clip):
    first = shown_frames(clip)[0]
    return 1 if is_hollow(clip[first]) else 0


def read_count(clip):
    shown = shown_frames(clip)
    flashes = [t for i, t in enumerate(shown) if i == 0 or t > shown[i - 1] + 1]
    return len(flashes) - 1


def read_motion(clip):
    points = np.array(centroids(clip))
    path = np.sum(np.linalg.norm(np.diff(points, axis=0), axis=1))
    net = np.linalg.norm(points[-1] - points[0])
    return 1 if net > 0.8 * path else 0


def read_shape(frame):
    mask = object_mask(frame)
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    side = max(crop.shape)
    scores = []
    for name in procedural.TASKS["static"].classes:
        ref = procedural.shape_mask(name, side)
        ref = ref[np.ix_(ref.any(1), ref.any(0))]
        if ref.shape != crop.shape:
            scores.append(-1.0)
            continue
        scores.append((ref & crop).sum() / (ref | crop).sum())
    return int(np.argmax(scores))


READERS = {
    "direction": read_direction,
    "order": read_order,
    "count": read_count,
    "motion": read_motion,
    "static": lambda clip: read_shape(clip[len(clip) // 2]),
}


def clean(task, count=24, seed=5):
    return procedural.generate(task, count, seed=seed, clutter=False)


@pytest.mark.parametrize("task", TASKS)
def test_the_pixels_show_the_label(task):
    clips, labels = clean(task)
    assert [READERS[task](c) for c in clips] == labels.tolist()


@pytest.mark.parametrize("side", range(4, 17))
def test_every_shape_differs_from_every_other_at_every_side(side):
    # Objects are at least 4 px (`_side`); two classes drawn with the same mask would be unlearnable
    # (it happened: a 4-px "hollow" square with a 2-px border was the filled square, so the order task
    # at 16 px had labels that no pixel showed).
    names = ("square", "hollow", "disc", "plus", "triangle")
    masks = {n: procedural.shape_mask(n, side) for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.array_equal(masks[a], masks[b]), (a, b, side)


@pytest.mark.parametrize("task", ["order", "direction", "count"])
def test_the_pixels_show_the_label_at_16_px(task):
    # The learning benchmark runs at 16 px, where objects shrink to 4-5 px.
    clips, labels = procedural.generate(task, 24, seed=5, size=16, clutter=False)
    assert [READERS[task](c) for c in clips] == labels.tolist()


@pytest.mark.parametrize("task", TASKS)
def test_reversing_time_maps_labels_as_the_task_says(task):
    clips, labels = clean(task)
    mapped = [procedural.TASKS[task].reversed_label[label] for label in labels]
    assert [READERS[task](c[::-1]) for c in clips] == mapped


def test_reversal_flips_direction_and_order_and_keeps_count_and_static():
    assert procedural.TASKS["direction"].reversed_label == (1, 0, 3, 2)
    assert procedural.TASKS["order"].reversed_label == (1, 0)
    assert procedural.TASKS["count"].reversed_label == (0, 1, 2, 3)
    assert procedural.TASKS["static"].reversed_label == (0, 1, 2, 3)
    assert {t for t, spec in procedural.TASKS.items() if not spec.temporal} == {"static"}


def test_shuffling_frames_keeps_the_static_label():
    clips, labels = clean("static")
    rng = np.random.default_rng(0)
    for clip, label in zip(clips, labels):
        shuffled = clip[rng.permutation(len(clip))]
        assert all(read_shape(frame) == label for frame in shuffled)


@pytest.mark.parametrize("task", TASKS)
def test_balanced_classes(task):
    classes = len(procedural.TASKS[task].classes)
    _, labels = procedural.generate(task, 8 * classes, seed=1)
    assert np.bincount(labels, minlength=classes).tolist() == [8] * classes


def test_no_single_pixel_gives_the_answer():
    # Every pixel position is non-constant across the clips of each class, and its mean is close for
    # the classes: the clutter and noise hide the label from any one pixel.
    clips, labels = procedural.generate("direction", 64, seed=2)
    means = np.stack([clips[labels == k].astype(np.float32).mean(0) for k in range(4)])
    assert np.all(clips.std(0) > 5)
    assert np.abs(means[0, 0] - means[1, 0]).mean() < 15


@pytest.mark.parametrize("task", TASKS)
def test_a_seed_gives_identical_clips(task):
    a, la = procedural.generate(task, 6, seed=11, split="val")
    b, lb = procedural.generate(task, 6, seed=11, split="val")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    c, _ = procedural.generate(task, 6, seed=12, split="val")
    assert not np.array_equal(a, c)


def test_same_bytes_on_every_backend():
    # Recorded once; every backend's run must reproduce them (the generator uses numpy only).
    clips, labels = procedural.generate("direction", 4, seed=0)
    digest = hashlib.sha256(clips.tobytes() + labels.tobytes()).hexdigest()
    assert digest == EXPECTED_DIRECTION_DIGEST


EXPECTED_DIRECTION_DIGEST = "2ebf8cfb477050fe960d502eb4ac908ea3bf87a482800eb7fd0d5c2ced77dc0d"


def test_splits_are_disjoint_streams():
    train, _ = procedural.generate("static", 32, seed=0, split="train")
    val, _ = procedural.generate("static", 32, seed=0, split="val")
    test, _ = procedural.generate("static", 32, seed=0, split="test")
    flat = {c.tobytes() for c in train}
    assert not flat & {c.tobytes() for c in val}
    assert not flat & {c.tobytes() for c in test}


def test_dataset_batches_normalised_clips_and_reshuffles():
    ds = procedural.ProceduralDataset("order", "train", 20, batch_size=8, seed=3, frames=6, size=16)
    assert len(ds) == 3
    x, y = ds[0]
    assert x.shape == (8, 6, 16, 16, 3) and x.dtype == np.float32 and y.shape == (8,)
    assert ds[2][0].shape[0] == 4
    first = np.concatenate([ds[i][1] for i in range(len(ds))])
    ds.on_epoch_end()
    second = np.concatenate([ds[i][1] for i in range(len(ds))])
    assert sorted(first.tolist()) == sorted(second.tolist()) == sorted(ds.labels.tolist())
    assert ds.num_classes == 2
    with pytest.raises(IndexError):
        ds[3]
    val = procedural.ProceduralDataset("order", "val", 10, batch_size=4, seed=3, frames=6, size=16)
    np.testing.assert_array_equal(np.concatenate([val[i][1] for i in range(len(val))]), val.labels)


def test_writer_makes_lists_for_the_video_pipeline(tmp_path):
    written = procedural.write_benchmark(tmp_path, "count", {"train": 4, "val": 2}, seed=0, frames=8, size=32)
    assert (tmp_path / "classes.txt").read_text().split() == list(procedural.TASKS["count"].classes)
    records = read_annotations(written["train.txt"]).records
    clips, labels = procedural.generate("count", 4, seed=0, split="train")
    assert [r.label for r in records] == labels.tolist()
    frames = VideoReader(records[1].resolve(str(tmp_path))).read(range(8))
    np.testing.assert_array_equal(frames, clips[1])  # FFV1 is lossless


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: procedural.generate("jump", 4), "Unknown task 'jump'"),
        (lambda: procedural.generate("count", 4, frames=4), "at least 7 frames"),
        (lambda: procedural.generate("static", 0), "count must be positive"),
        (lambda: procedural.generate("static", 2, split="dev"), "split must be one of"),
        (lambda: procedural.make_clip("order", 2, np.random.default_rng(0)), "outside the 2 classes"),
        (lambda: procedural.generate("static", 2, size=8), "at least 16 px"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
