"""Training: the released recipe's optimiser and schedule, the per-epoch checkpoint, and `train`."""

from vidtr_keras.training.callbacks import EpochCheckpoint, restore_rng_states, rng_states
from vidtr_keras.training.optimizers import CoupledSGD
from vidtr_keras.training.schedules import RELEASED_EPOCHS, RELEASED_MILESTONES, EpochStepDecay, scaled_milestones
from vidtr_keras.training.trainer import TrainConfig, train

__all__ = [
    "CoupledSGD",
    "EpochCheckpoint",
    "EpochStepDecay",
    "RELEASED_EPOCHS",
    "RELEASED_MILESTONES",
    "TrainConfig",
    "restore_rng_states",
    "rng_states",
    "scaled_milestones",
    "train",
]
