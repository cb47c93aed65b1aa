"""The learning-rate schedules: the released recipe's step decay (x0.1 after epochs 25 and 40 of 50), and the
fine-tuning recipe's linear warm-up then cosine decay, per step (VideoMAE, timm)."""

import math

import keras
from keras import ops

RELEASED_EPOCHS = 50
RELEASED_MILESTONES = (25, 40)


@keras.saving.register_keras_serializable(package="vidtr_keras")
class EpochStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = initial x gamma ** (milestones reached), milestones in epochs, counted in steps
    (torch's MultiStepLR stepped once per epoch: epoch e uses gamma ** #{m <= e}).

    Args:
        initial_learning_rate: lr of the first epoch.
        milestones: epochs (0-based) from which the lr is multiplied by `gamma` once more.
        steps_per_epoch: optimizer steps in an epoch.
        gamma: the factor (0.1).
    """

    def __init__(self, initial_learning_rate, milestones, steps_per_epoch, gamma=0.1):
        self.initial_learning_rate = float(initial_learning_rate)
        self.milestones = [int(m) for m in milestones]
        self.steps_per_epoch = int(steps_per_epoch)
        self.gamma = float(gamma)

    def __call__(self, step):
        epoch = ops.floor_divide(ops.cast(step, "int32"), self.steps_per_epoch)
        reached = ops.zeros((), "float32")
        for milestone in self.milestones:
            reached = reached + ops.cast(ops.greater_equal(epoch, milestone), "float32")
        return self.initial_learning_rate * ops.power(ops.cast(self.gamma, "float32"), reached)

    def at_epoch(self, epoch):
        return self.initial_learning_rate * self.gamma ** sum(epoch >= m for m in self.milestones)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "milestones": self.milestones,
            "steps_per_epoch": self.steps_per_epoch,
            "gamma": self.gamma,
        }


@keras.saving.register_keras_serializable(package="vidtr_keras")
class WarmupCosineDecay(keras.optimizers.schedules.CosineDecay):
    """Linear warm-up from 0 to `learning_rate` over `warmup_steps`, then a half cosine from
    `learning_rate` down to `min_learning_rate` over the remaining steps: Keras' `CosineDecay` with its
    warm-up, set up from a run's length (the schedule of VideoMAE's and timm's fine-tuning, per step).

        step s < W:  lr x s / W;      step s >= W:  m + (lr - m) x (1 + cos(pi x (s - W) / (N - W))) / 2

    with N = `total_steps`, W = `warmup_steps`, m = `min_learning_rate`.

    Args:
        learning_rate: the peak learning rate, reached after the warm-up.
        total_steps: optimizer steps of the whole run (epochs x steps per epoch).
        warmup_steps: steps of linear warm-up (0: none, the cosine starts at `learning_rate`).
        min_learning_rate: the learning rate the cosine ends at.
        steps_per_epoch: steps of an epoch (for `at_epoch`).
    """

    def __init__(self, learning_rate, total_steps, warmup_steps=0, min_learning_rate=0.0, steps_per_epoch=1):
        learning_rate, min_learning_rate = float(learning_rate), float(min_learning_rate)
        total_steps, warmup_steps = int(total_steps), int(warmup_steps)
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"`warmup_steps` must be in [0, {total_steps}) (the run's steps), got {warmup_steps}.")
        if not 0.0 <= min_learning_rate <= learning_rate:
            raise ValueError(f"`min_lr` must be in [0, lr {learning_rate}], got {min_learning_rate}.")
        alpha = min_learning_rate / learning_rate if learning_rate > 0 else 0.0
        super().__init__(
            initial_learning_rate=0.0 if warmup_steps else learning_rate,
            decay_steps=total_steps - warmup_steps,
            alpha=alpha,
            warmup_target=learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
            name="WarmupCosineDecay",
        )
        self.learning_rate = learning_rate
        self.total_steps = total_steps
        self.min_learning_rate = min_learning_rate
        self.steps_per_epoch = int(steps_per_epoch)

    def at_epoch(self, epoch):
        """The learning rate of the first step of `epoch` (0-based), as a float (for the log)."""
        return float(ops.convert_to_numpy(self(epoch * self.steps_per_epoch)))

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "min_learning_rate": self.min_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
        }


def scaled_milestones(epochs, milestones=None):
    """The epochs after which the lr drops: `milestones` if given; otherwise the released 25 and 40
    of 50 epochs, kept at the same fraction of a shorter run (round(m x epochs / 50), at least 1)."""
    if milestones is not None:
        return sorted(int(m) for m in milestones)
    if epochs >= RELEASED_EPOCHS:
        return list(RELEASED_MILESTONES)
    return [max(1, int(math.floor(m * epochs / RELEASED_EPOCHS + 0.5))) for m in RELEASED_MILESTONES]
