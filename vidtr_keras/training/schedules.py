"""The learning-rate schedule of the released recipe: x0.1 after epochs 25 and 40 of 50."""

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


def scaled_milestones(epochs, milestones=None):
    """The epochs after which the lr drops: `milestones` if given; otherwise the released 25 and 40
    of 50 epochs, kept at the same fraction of a shorter run (round(m x epochs / 50), at least 1)."""
    if milestones is not None:
        return sorted(int(m) for m in milestones)
    if epochs >= RELEASED_EPOCHS:
        return list(RELEASED_MILESTONES)
    return [max(1, int(math.floor(m * epochs / RELEASED_EPOCHS + 0.5))) for m in RELEASED_MILESTONES]
