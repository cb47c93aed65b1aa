"""Formula-driven images for pretraining without a download: fractals of random iterated function systems,
as in FractalDB (Kataoka et al., "Pre-training without Natural Images", ACCV 2020 / IJCV 2022).

A class is an iterated function system (IFS): 2 to 4 affine maps w_j(x) = A_j x + t_j of the plane,
map j chosen with probability proportional to |det A_j| (FractalDB's choice). Unlike FractalDB, which
draws the six parameters uniformly in [-1, 1] and relies on its filter alone, every A_j here is drawn
with a largest singular value below `MAX_SINGULAR_VALUE`, so the system is contractive: its attractor
exists, is bounded, and every orbit started on it stays on it. FractalDB's "filling rate" filter then
keeps a system only if its attractor, rendered in a `FILTER_SIZE`-pixel square, covers at least
`fill_threshold` of the pixels (thin, line-like attractors are rejected; the paper's threshold is 0.2).

An image of a class is one render of its IFS with FractalDB's instance augmentations:
- weight perturbation: one parameter (of one map; A's four or t's two) multiplied by a weight in
  [0.8, 1.2] (FractalDB's intra-category weights 0.8, 0.9, ..., 1.2), the map shrunk back inside the
  contraction bound if the weight pushed it out;
- random flips (left-right, up-down) and a rotation of the point set by up to `rotation` degrees;
- rendering: black background, the points in one random colour per map ("colour") or white ("grey",
  half of the images), each point drawn as a single pixel or, for half the images, as a random binary
  3x3 patch (FractalDB's patch rendering).

Rendering is the chaos game, vectorised over images and chains: each chain starts at the fixed point of
one of the maps (a point of the attractor, so no burn-in is needed) and applies randomly chosen maps;
the points of every chain of every image in a batch are computed together with numpy, then scattered
into the images at once.

Seeds: class c's system depends only on (seed, c), so the classes are the same whatever the image size
or the number of classes asked for; the images of a split depend on (seed, split, classes, images per
class, size), and the "val" split holds new instances of the same classes.

Example:
>>> from vidtr_keras.data import fractals
>>> images, labels = fractals.generate(num_classes=4, images_per_class=2, image_size=32, seed=0)
>>> images.shape, images.dtype, labels.tolist()
((8, 32, 32, 3), dtype('uint8'), [0, 0, 1, 1, 2, 2, 3, 3])
>>> data = fractals.FractalDataset(num_classes=100, images_per_class=100, image_size=32, batch_size=64)
"""

import dataclasses
import math

import numpy as np

from vidtr_keras.data.batches import ArrayBatches

SPLITS = {"train": 0, "val": 1, "test": 2}
MAX_MAPS = 4
MAP_COUNTS = (2, 3, 4)
MAX_SINGULAR_VALUE = 0.9
FILTER_SIZE = 64
FILL_THRESHOLD = 0.2  # FractalDB's filling-rate threshold
PERTURBATION = (0.8, 1.2)  # FractalDB's range of weights on one parameter
_CLASS_STREAM = 2**20  # the seed stream of the class systems, apart from the splits' streams


@dataclasses.dataclass(frozen=True)
class IFS:
    """An iterated function system of affine maps x -> A_j x + t_j.

    Args:
        linear: (maps, 2, 2) matrices A_j.
        offset: (maps, 2) translations t_j.
        probability: (maps,) the chaos game's map probabilities, proportional to |det A_j|.
    """

    linear: np.ndarray
    offset: np.ndarray
    probability: np.ndarray

    @property
    def num_maps(self):
        return int(self.linear.shape[0])

    def contraction(self):
        """The largest singular value over the maps (< 1: the system is contractive)."""
        return float(np.linalg.svd(self.linear, compute_uv=False).max())

    def fixed_points(self):
        """(maps, 2) fixed points x = A_j x + t_j, each a point of the attractor."""
        eye = np.eye(2)[None]
        return np.linalg.solve(eye - self.linear, self.offset[..., None])[..., 0]


def _probabilities(linear):
    det = np.abs(np.linalg.det(linear))
    return det / det.sum() if det.sum() > 0 else np.full(len(linear), 1.0 / len(linear))


def _contractive_linear(rng, count):
    """`count` 2x2 matrices, entries uniform in [-1, 1] (FractalDB's range), kept only if their largest
    singular value is below `MAX_SINGULAR_VALUE` (rejection, so the accepted ones stay uniform there)."""
    out = []
    while len(out) < count:
        a = rng.uniform(-1.0, 1.0, (16, 2, 2))
        out += list(a[np.linalg.svd(a, compute_uv=False)[:, 0] < MAX_SINGULAR_VALUE])
    return np.stack(out[:count])


def random_ifs(rng, num_maps=None):
    """A random contractive IFS (unfiltered) from the generator `rng`; 2-4 maps unless `num_maps` says."""
    maps = int(rng.choice(MAP_COUNTS)) if num_maps is None else int(num_maps)
    if not 1 <= maps <= MAX_MAPS:
        raise ValueError(f"num_maps must be in 1..{MAX_MAPS}, got {num_maps}.")
    linear = _contractive_linear(rng, maps)
    return IFS(linear, rng.uniform(-1.0, 1.0, (maps, 2)), _probabilities(linear))


def filling_rate(systems, size=FILTER_SIZE, points=None, seed=0):
    """The fraction of a `size` x `size` render's pixels each attractor covers (FractalDB's filter):
    an array for a list of systems, a float for one `IFS`."""
    one = isinstance(systems, IFS)
    rendered = render([systems] if one else systems, size, np.random.default_rng(seed), points=points, augment=False)
    rates = (rendered[..., 0] > 0).mean(axis=(1, 2))
    return float(rates[0]) if one else rates


def class_system(seed, label, fill_threshold=FILL_THRESHOLD, max_tries=1024):
    """The IFS of class `label`: the first random system of its seed stream whose filling rate is at least
    `fill_threshold` (FractalDB's category search; candidates are drawn and rendered 4 at a time)."""
    if not 0 <= fill_threshold < 1:
        raise ValueError(f"fill_threshold must be a fraction of the pixels in [0, 1), got {fill_threshold}.")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _CLASS_STREAM, int(label)]))
    for _ in range(0, int(max_tries), 4):
        candidates = [random_ifs(rng) for _ in range(4)]
        passed = np.flatnonzero(filling_rate(candidates) >= fill_threshold)
        if len(passed):
            return candidates[passed[0]]
    raise ValueError(
        f"no IFS with a filling rate >= fill_threshold={fill_threshold} in {max_tries} tries for class {label}; "
        "lower fill_threshold."
    )


def perturb(ifs, rng):
    """FractalDB's weight perturbation: one parameter of one map times a weight in `PERTURBATION`."""
    linear, offset = ifs.linear.copy(), ifs.offset.copy()
    j, k = int(rng.integers(ifs.num_maps)), int(rng.integers(6))
    weight = rng.uniform(*PERTURBATION)
    if k < 4:
        linear[j].flat[k] *= weight
        top = np.linalg.svd(linear[j], compute_uv=False)[0]
        if top >= MAX_SINGULAR_VALUE:  # keep the system contractive
            linear[j] *= MAX_SINGULAR_VALUE * 0.999 / top
    else:
        offset[j, k - 4] *= weight
    return IFS(linear, offset, _probabilities(linear))


def _points(systems, rng, points):
    """(images, points, 2) chaos-game points and (images, points) map indices of each system."""
    n = len(systems)
    linear = np.zeros((n, MAX_MAPS, 2, 2))
    offset = np.zeros((n, MAX_MAPS, 2))
    cumulative = np.ones((n, MAX_MAPS))
    start = np.zeros((n, MAX_MAPS, 2))
    for i, s in enumerate(systems):
        m = s.num_maps
        linear[i, :m], offset[i, :m] = s.linear, s.offset
        cumulative[i, :m] = np.cumsum(s.probability)
        cumulative[i, m - 1] = 1.0  # exactly: a rounded-down sum must never select a padding map
        start[i, :m] = s.fixed_points()
        start[i, m:] = start[i, 0]
    steps = 16
    chains = max(1, math.ceil(points / steps))
    rows = np.arange(n)[:, None]
    # each chain starts on the attractor, at a map's fixed point
    x = start[rows, rng.integers(0, MAX_MAPS, (n, chains)) % np.array([s.num_maps for s in systems])[:, None]]
    u = rng.random((steps, n, chains, 1))
    out, which = [], []
    for step in range(steps):
        k = np.minimum((u[step] > cumulative[:, None, :]).sum(-1), MAX_MAPS - 1)
        x = np.einsum("bcij,bcj->bci", linear[rows, k], x) + offset[rows, k]
        out.append(x)
        which.append(k)
    return np.concatenate(out, axis=1), np.concatenate(which, axis=1)


def render(systems, size, rng, points=None, augment=True, rotation=30.0):
    """Renders one image per IFS: (len(systems), size, size, 3) uint8.

    Args:
        systems: a list of `IFS`.
        size: image side in pixels.
        rng: a numpy Generator for the chaos game and the augmentations.
        points: chaos-game points per image (default: 2.5 per pixel, enough to cover the attractor).
        augment: flips, rotation, colour or grey, single pixels or 3x3 patches (else: grey pixels,
            no flip or rotation).
        rotation: the largest rotation in degrees.
    """
    size = int(size)
    if size < 4:
        raise ValueError(f"image_size must be at least 4 pixels, got {size}.")
    n = len(systems)
    points = int(points or 2.5 * size * size)
    xy, which = _points(systems, rng, points)
    if augment:
        angle = np.radians(rng.uniform(-rotation, rotation, n))
        cos, sin = np.cos(angle), np.sin(angle)
        rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
        flips = np.where(rng.random((n, 2)) < 0.5, -1.0, 1.0)
        xy = np.einsum("bij,bpj->bpi", rot, xy) * flips[:, None, :]
    low, high = xy.min(axis=1, keepdims=True), xy.max(axis=1, keepdims=True)
    pixel = np.round((xy - low) / np.maximum(high - low, 1e-9) * (size - 1)).astype(np.int64)
    if augment:
        colours = rng.integers(64, 256, (n, MAX_MAPS, 3))
        grey = rng.random(n) < 0.5
        colours[grey] = 255
    else:
        colours = np.full((n, MAX_MAPS, 3), 255)
    images = np.zeros((n, size, size, 3), np.uint8)
    b = np.broadcast_to(np.arange(n)[:, None], which.shape)
    images[b, pixel[..., 1], pixel[..., 0]] = colours[b, which]
    if augment:
        images = _patches(images, rng)
    return images


def _patches(images, rng):
    """FractalDB's patch rendering for a random half of the images: each point becomes a random binary
    3x3 patch (the centre always on), drawn as the maximum over the patch's shifted copies."""
    n = len(images)
    use = rng.random(n) < 0.5
    pattern = (rng.random((n, 3, 3)) < 0.5) & use[:, None, None]
    pattern[:, 1, 1] = True
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = images.copy()
    h, w = images.shape[1:3]
    for dy in range(3):
        for dx in range(3):
            on = pattern[:, dy, dx]
            if (dy, dx) != (1, 1) and on.any():
                out[on] = np.maximum(out[on], padded[on, 2 - dy : 2 - dy + h, 2 - dx : 2 - dx + w])
    return out


def generate(
    num_classes, images_per_class, image_size=32, seed=0, split="train", fill_threshold=FILL_THRESHOLD, chunk=256
):
    """`images_per_class` images of each of `num_classes` fractal classes.

    Returns:
        (images (num_classes * images_per_class, size, size, 3) uint8, labels int32), class-major order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}.")
    if int(num_classes) < 1 or int(images_per_class) < 1:
        raise ValueError(f"num_classes and images_per_class must be positive, got {num_classes}, {images_per_class}.")
    classes = [class_system(seed, c, fill_threshold) for c in range(int(num_classes))]
    labels = np.repeat(np.arange(int(num_classes)), int(images_per_class)).astype(np.int32)
    images = np.empty((len(labels), int(image_size), int(image_size), 3), np.uint8)
    for first in range(0, len(labels), chunk):
        rows = range(first, min(first + chunk, len(labels)))
        # one stream per chunk: (seed, split, first image); image i's instance depends on its chunk only
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS[split], first]))
        systems = [perturb(classes[labels[i]], rng) for i in rows]
        images[first : rows.stop] = render(systems, image_size, rng)
    return images, labels


class FractalDataset(ArrayBatches):
    """A split of a fractal dataset as a Keras `PyDataset` of (images, labels) batches.

    Images are generated once (numpy, deterministic from `seed`) and normalised as the video pipeline
    does (ImageNet mean/std, `data.transforms.normalize`), so an image model trained here sees the inputs
    a video model does after inflation.

    Args:
        num_classes: IFS classes.
        images_per_class: images of each class in this split.
        image_size: image side in pixels.
        batch_size: images per batch.
        seed: dataset seed (the classes depend only on it).
        split: "train", "val" or "test": new instances of the same classes.
        shuffle: a new seeded order every epoch (default: for "train").
        fill_threshold: FractalDB's filling-rate filter of the classes.
        **kwargs: `keras.utils.PyDataset` arguments.
    """

    def __init__(
        self,
        num_classes=100,
        images_per_class=100,
        image_size=32,
        batch_size=64,
        seed=0,
        split="train",
        shuffle=None,
        fill_threshold=FILL_THRESHOLD,
        **kwargs,
    ):
        super().__init__(batch_size, seed, 11, split == "train" if shuffle is None else shuffle, **kwargs)
        self.num_classes = int(num_classes)
        self._start(*generate(num_classes, images_per_class, image_size, seed, split, fill_threshold))

    @property
    def images(self):
        """The generated images (before normalisation)."""
        return self.inputs


__all__ = [
    "FILL_THRESHOLD",
    "IFS",
    "FractalDataset",
    "class_system",
    "filling_rate",
    "generate",
    "perturb",
    "random_ifs",
    "render",
]
