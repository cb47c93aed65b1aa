"""Weight converters: official gluonmm checkpoints (`gluonmm`)."""

from vidtr_keras.convert import gluonmm

__all__ = ["gluonmm"]
