"""The fractal image generator (FractalDB-style iterated function systems): seeded, contractive, filtered by
filling rate, classes that differ, images in range, and the Keras dataset over it. Numpy only: the same on
every backend."""

import numpy as np
import pytest

from vidtr_keras.data import fractals
from vidtr_keras.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def test_the_same_seed_gives_the_same_images_and_another_seed_others():
    a, labels = fractals.generate(4, 3, image_size=16, seed=0)
    b, _ = fractals.generate(4, 3, image_size=16, seed=0)
    c, _ = fractals.generate(4, 3, image_size=16, seed=1)
    np.testing.assert_array_equal(a, b)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert not np.array_equal(a, c)
    for label in range(3):  # a class is the same system whatever was asked for with it
        assert np.array_equal(fractals.class_system(5, label).linear, fractals.class_system(5, label).linear)


@pytest.mark.parametrize("label", range(6))
def test_every_class_is_a_contractive_system_that_passes_the_filling_rate_filter(label):
    ifs = fractals.class_system(0, label)
    assert 2 <= ifs.num_maps <= 4
    assert ifs.contraction() < fractals.MAX_SINGULAR_VALUE < 1
    assert np.isclose(ifs.probability.sum(), 1.0) and (ifs.probability >= 0).all()
    np.testing.assert_allclose(  # probabilities proportional to |det A_j| (FractalDB)
        ifs.probability, np.abs(np.linalg.det(ifs.linear)) / np.abs(np.linalg.det(ifs.linear)).sum()
    )
    assert fractals.filling_rate(ifs) >= fractals.FILL_THRESHOLD


def test_the_filter_rejects_thin_attractors():
    # a system whose maps all squash onto the x axis: its attractor is a segment, filling rate ~ 1 / size
    line = fractals.IFS(
        np.array([[[0.5, 0.0], [0.0, 0.0]], [[0.5, 0.0], [0.0, 0.0]]]),
        np.array([[0.0, 0.0], [0.5, 0.0]]),
        np.array([0.5, 0.5]),
    )
    assert fractals.filling_rate(line) < 2.0 / fractals.FILTER_SIZE


def test_chaos_game_points_stay_on_the_attractor():
    # The attractor lies in the ball of radius max|t_j| / (1 - s) (s: the contraction); started at a fixed
    # point (on the attractor), every point stays there; the images of the points under each map are
    # points of the attractor too, so they stay close to the point set.
    ifs = fractals.class_system(0, 3)
    xy, which = fractals._points([ifs], np.random.default_rng(0), 4000)
    bound = np.linalg.norm(ifs.offset, axis=1).max() / (1 - ifs.contraction())
    assert np.linalg.norm(xy[0], axis=1).max() <= bound + 1e-9
    assert set(np.unique(which)) <= set(range(ifs.num_maps))
    mapped = np.einsum("ij,pj->pi", ifs.linear[0], xy[0][:500]) + ifs.offset[0]
    nearest = np.sqrt(((mapped[:, None] - xy[0][None]) ** 2).sum(-1)).min(axis=1)
    spread = xy[0].max(0) - xy[0].min(0)
    assert np.median(nearest) < 0.05 * spread.max()


def test_weight_perturbation_changes_one_parameter_and_keeps_the_system_contractive():
    ifs = fractals.class_system(0, 1)
    rng = np.random.default_rng(0)
    for _ in range(200):
        out = fractals.perturb(ifs, rng)
        assert out.contraction() < fractals.MAX_SINGULAR_VALUE
        changed_maps = np.flatnonzero(
            (out.linear != ifs.linear).any(axis=(1, 2)) | (out.offset != ifs.offset).any(axis=1)
        )
        assert len(changed_maps) <= 1
        if len(changed_maps) and (out.offset != ifs.offset).any():
            assert (out.offset != ifs.offset).sum() == 1
            ratio = out.offset[out.offset != ifs.offset] / ifs.offset[out.offset != ifs.offset]
            assert fractals.PERTURBATION[0] <= ratio[0] <= fractals.PERTURBATION[1]


def _mask(ifs, size=32):
    return fractals.render([ifs], size, np.random.default_rng(0), augment=False)[0, ..., 0] > 0


def test_classes_differ():
    systems = [fractals.class_system(0, c) for c in range(6)]
    masks = [_mask(s) for s in systems]
    for i in range(len(masks)):
        for j in range(i):
            iou = (masks[i] & masks[j]).sum() / (masks[i] | masks[j]).sum()
            assert iou < 0.8, (i, j, iou)
    # and the images of a class are closer to each other than to other classes' (nearest class mean)
    images, labels = fractals.generate(6, 8, image_size=32, seed=0)
    grey = images.max(axis=-1).reshape(len(images), -1).astype(np.float64)
    means = np.stack([grey[labels == c].mean(0) for c in range(6)])
    nearest = np.argmin(((grey[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.5  # chance: 1/6


def test_images_are_in_range_and_not_blank():
    images, _ = fractals.generate(3, 4, image_size=24, seed=2)
    assert images.shape == (12, 24, 24, 3) and images.dtype == np.uint8
    lit = (images.max(axis=-1) > 0).mean(axis=(1, 2))
    assert (lit > 0.05).all() and (lit < 1.0).all()
    # the points fill the frame (each image is scaled to its points' bounding box)
    rows, cols = (images.max(axis=-1) > 0).any(axis=2), (images.max(axis=-1) > 0).any(axis=1)
    assert rows[:, 0].all() and rows[:, -1].all() and cols[:, 0].all() and cols[:, -1].all()


def test_the_dataset_gives_normalised_batches_of_its_split():
    train = fractals.FractalDataset(num_classes=3, images_per_class=4, image_size=16, batch_size=5, seed=0)
    val = fractals.FractalDataset(num_classes=3, images_per_class=2, image_size=16, batch_size=5, split="val")
    assert len(train) == 3 and len(val) == 2
    x, y = train[0]
    assert x.shape == (5, 16, 16, 3) and x.dtype == np.float32 and y.dtype == np.int32
    low = (0 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    high = (1 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    assert (x >= low - 1e-5).all() and (x <= high + 1e-5).all()
    seen = np.concatenate([train[i][1] for i in range(len(train))])
    assert sorted(seen.tolist()) == sorted(train.labels.tolist())  # every image once per epoch
    first = [train[i][1].tolist() for i in range(len(train))]
    train.on_epoch_end()
    assert [train[i][1].tolist() for i in range(len(train))] != first  # a new seeded order
    assert not np.array_equal(val.images, train.images[: len(val.images)])  # new renders of the same classes
    assert sorted(set(val.labels.tolist())) == [0, 1, 2]
    with pytest.raises(IndexError):
        train[3]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"image_size": 2}, "image_size"),
        ({"split": "dev"}, "split"),
        ({"num_classes": 0}, "num_classes"),
        ({"fill_threshold": 1.01}, "fill_threshold"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    args = {"num_classes": 2, "images_per_class": 1, "image_size": 16, **kwargs}
    with pytest.raises(ValueError, match=match):
        fractals.generate(**args)
