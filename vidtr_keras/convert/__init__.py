"""Weight converters: official gluonmm checkpoints (`gluonmm`) and ImageNet ViT inflation (`vit`, readers
in `vit_readers`); checkpoint files are read in one place (`io`)."""

from vidtr_keras.convert import gluonmm, io, vit

__all__ = ["gluonmm", "io", "vit"]
