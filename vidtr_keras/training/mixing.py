"""Soft targets for training: one-hot targets (for label smoothing) and mixup / cutmix on clips.

Mixup (Zhang et al., ICLR 2018) blends whole clips; CutMix (Yun et al., ICCV 2019) pastes a box of another
clip, the same box in every frame (a tube through time, as video recipes such as VideoMAE's apply timm's
`Mixup` to clips), and mixes the targets by the box's area. As timm's `Mixup` in its default "batch" mode:
one mixing factor lam ~ Beta(alpha, alpha) per batch, each clip mixed with the clip at the mirrored position
of the batch, cutmix instead of mixup on half of the batches when both are on, and the box's lam corrected to
the area actually pasted after clipping at the borders. The targets are lam x y + (1 - lam) x y', so a
single-label target still sums to 1.

Every draw of batch b in epoch e comes from a generator seeded by (seed, e, b): a run is repeatable whatever
the number of data workers, and a resumed run mixes exactly as an uninterrupted one.
"""

import math

import keras
import numpy as np


def one_hot(labels, num_classes):
    """(batch,) class indices -> (batch, num_classes) float32 one-hot targets."""
    labels = np.asarray(labels)
    targets = np.zeros((len(labels), int(num_classes)), np.float32)
    targets[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
    return targets


def cutmix_box(height, width, lam, rng):
    """(y0, y1, x0, x1): a box of about (1 - lam) of the frame, centred at a uniform random point and
    clipped at the borders (timm's `rand_bbox`)."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y0, y1 = int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height))
    x0, x1 = int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width))
    return y0, y1, x0, x1


def mix_batch(clips, targets, rng, mixup=0.0, cutmix=0.0):
    """Mixup or cutmix of a batch (module docstring).

    Args:
        clips: (batch, frames, height, width, channels) float array.
        targets: (batch, classes) float targets (one-hot, or multi-hot for multi-label).
        rng: a `numpy.random.Generator`.
        mixup, cutmix: the Beta distributions' alpha (0: off).

    Returns:
        (clips, targets, box): the mixed batch and the pasted (y0, y1, x0, x1) box, None for mixup.
    """
    if mixup <= 0 and cutmix <= 0:
        return clips, targets, None
    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.random() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = float(rng.beta(alpha, alpha))
    partner = clips[::-1]
    box = None
    if use_cutmix:
        height, width = clips.shape[2], clips.shape[3]
        box = cutmix_box(height, width, lam, rng)
        y0, y1, x0, x1 = box
        clips = np.array(clips, copy=True)
        clips[:, :, y0:y1, x0:x1, :] = partner[:, :, y0:y1, x0:x1, :]  # the same box in every frame
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
    else:
        clips = (lam * clips + (1.0 - lam) * partner).astype(clips.dtype)
    targets = (lam * targets + (1.0 - lam) * targets[::-1]).astype(np.float32)
    return clips, targets, box


class SoftTargetBatches(keras.utils.PyDataset):
    """The batches of a `VideoClipDataset` with float targets: one-hot for single-label lists, and mixed
    by mixup / cutmix when training (module docstring).

    Args:
        dataset: a `vidtr_keras.data.VideoClipDataset` (its workers serve this dataset instead).
        mixup, cutmix: the Beta distributions' alpha (0: off); ignored when `dataset` is not training.
        seed: seeds the mixing (with the epoch and the batch).

    Attributes:
        training, epoch, failures, set_epoch: those of `dataset` (what `EpochCheckpoint` uses).
    """

    def __init__(self, dataset, mixup=0.0, cutmix=0.0, seed=0):
        super().__init__(
            workers=dataset.workers,
            use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        if mixup < 0 or cutmix < 0:
            raise ValueError(f"`mixup` and `cutmix` must be >= 0, got {mixup} and {cutmix}.")
        self.dataset = dataset
        self.mixup = float(mixup) if dataset.training else 0.0
        self.cutmix = float(cutmix) if dataset.training else 0.0
        self.seed = int(seed)

    @property
    def training(self):
        return self.dataset.training

    @property
    def epoch(self):
        return self.dataset.epoch

    @property
    def failures(self):
        return self.dataset.failures

    def set_epoch(self, epoch):
        self.dataset.set_epoch(epoch)

    def __len__(self):
        return len(self.dataset)

    def mixing_rng(self, epoch, batch):
        return np.random.default_rng([self.seed % 2**63, 3, int(epoch), int(batch)])

    def __getitem__(self, batch):
        data = self.dataset
        if batch < 0 or batch >= len(data):
            raise IndexError(f"Batch {batch} out of range (the dataset has {len(data)}).")
        epoch = data.epoch  # read once: the clips and the mixing of this batch come from the same epoch
        order = data.order(epoch)[batch * data.batch_size : (batch + 1) * data.batch_size]
        items = [data.get_item(int(i), epoch) for i in order]
        clips = np.stack([clip for clip, _ in items])
        targets = np.stack([target for _, target in items])
        if not data.multi_label:
            targets = one_hot(targets, data.num_classes)
        clips, targets, _ = mix_batch(clips, targets, self.mixing_rng(epoch, batch), self.mixup, self.cutmix)
        return clips, targets

    def on_epoch_end(self):
        pass
