"""Training: the released recipe's optimiser and schedule, the fine-tuning recipe's (AdamW with layer decay,
warm-up + cosine, soft targets with mixup / cutmix), the per-epoch checkpoint, and `train`."""

from vidtr_keras.training.callbacks import EpochCheckpoint, restore_rng_states, rng_states
from vidtr_keras.training.config import TrainConfig
from vidtr_keras.training.mixing import SoftTargetBatches, mix_batch
from vidtr_keras.training.optimizers import CoupledSGD, LayerDecayAdamW
from vidtr_keras.training.schedules import (
    RELEASED_EPOCHS,
    RELEASED_MILESTONES,
    EpochStepDecay,
    WarmupCosineDecay,
    scaled_milestones,
)
from vidtr_keras.training.trainer import train

__all__ = [
    "CoupledSGD",
    "EpochCheckpoint",
    "EpochStepDecay",
    "LayerDecayAdamW",
    "RELEASED_EPOCHS",
    "RELEASED_MILESTONES",
    "SoftTargetBatches",
    "TrainConfig",
    "WarmupCosineDecay",
    "mix_batch",
    "restore_rng_states",
    "rng_states",
    "scaled_milestones",
    "train",
]
