"""Weight converters: official gluonmm checkpoints (`gluonmm`)."""

from vidtr_keras.convert import gluonmm
from vidtr_keras.convert import vit

__all__ = ["gluonmm", "vit"]
