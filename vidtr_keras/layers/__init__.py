"""VidTr layers, written once with `keras.ops` for TensorFlow, JAX and PyTorch."""

from vidtr_keras.layers.attention import JointAttention, SeparableAttention
from vidtr_keras.layers.drop_path import DropPath
from vidtr_keras.layers.embedding import (
    ClassTokenReadout,
    ClassTokens,
    FlattenPatches,
    JoinClassToken,
    PositionEmbedding,
    TubeletEmbedding,
)
from vidtr_keras.layers.encoder import VidTrEncoderBlock
from vidtr_keras.layers.preprocessing import VidTrPreprocessor
from vidtr_keras.layers.temporal_pooling import (
    TemporalAveragePooling,
    TemporalConvPooling,
    TopKStdPooling,
    std_topk_selection,
)

__all__ = [
    "ClassTokenReadout",
    "ClassTokens",
    "DropPath",
    "JoinClassToken",
    "FlattenPatches",
    "JointAttention",
    "PositionEmbedding",
    "SeparableAttention",
    "TemporalAveragePooling",
    "TemporalConvPooling",
    "TopKStdPooling",
    "TubeletEmbedding",
    "VidTrEncoderBlock",
    "VidTrPreprocessor",
    "std_topk_selection",
]
