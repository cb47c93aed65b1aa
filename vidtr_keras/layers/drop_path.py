"""Stochastic depth: drop a whole residual branch per sample (Huang et al., "Deep Networks with
Stochastic Depth", ECCV 2016), as timm's `DropPath` does in ViT and VideoMAE fine-tuning."""

import numbers

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vidtr_keras")
class DropPath(keras.layers.Layer):
    """Drops a residual branch for a random subset of the samples of a batch (stochastic depth).

    In training each sample's branch is zeroed with probability `rate` and kept samples are scaled by
    1 / (1 - rate), so the expected branch is unchanged; at inference the layer is the identity. The
    draw is one per sample (a (batch, 1, ..., 1) mask broadcast over tokens and channels), as in
    timm's `drop_path` (`timm/layers/drop.py`): `x + DropPath(branch)` then skips the whole block
    branch for that sample. Huang et al. 2016 (arXiv:1603.09382) drop residual blocks of a ResNet;
    DeiT, timm's ViT and VideoMAE fine-tuning drop the attention and MLP branches of every
    transformer block, at rates rising linearly with depth (`BackboneConfig.drop_path_rate`).

    Args:
        rate: probability of dropping a sample's branch, in [0, 1).
        seed: optional integer seed of the layer's `keras.random.SeedGenerator`.

    Call arguments:
        inputs: a residual branch (batch, ...).
        training: drop only when True.

    Returns:
        inputs, each sample multiplied by 0 or 1 / (1 - rate).

    A branch split over several tensors (VidTr's patch tokens and the class token that bypasses
    separable attention) shares one draw: `scale = layer.keep_scale(batch)` once, then
    `scale_samples(part, scale)` for each part, as `VidTrEncoderBlock` does.

    Example:
    >>> layer = DropPath(0.5)
    >>> x = keras.ops.ones((4, 3, 2))
    >>> bool(keras.ops.all(layer(x) == x))  # the identity at inference
    True
    >>> y = keras.ops.convert_to_numpy(layer(x, training=True))
    >>> all(set(sample.ravel().tolist()) in ({0.0}, {2.0}) for sample in y)  # each sample dropped or doubled
    True
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"{self.name}: rate (the drop-path probability) must be in [0, 1), got {rate!r}.")
        self.rate = float(rate)
        self.seed = seed
        # Like keras.layers.Dropout: no generator (no state, no draw) when nothing is ever dropped.
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None
        self.built = True

    def keep_scale(self, batch_size):
        """(batch_size,) float32 factors, one draw: 0 for a dropped sample, 1 / (1 - rate) for a kept one."""
        keep_prob = 1.0 - self.rate
        if self.seed_generator is None:
            return ops.ones((batch_size,), dtype="float32")
        keep = keras.random.uniform((batch_size,), dtype="float32", seed=self.seed_generator) < keep_prob
        return ops.cast(keep, "float32") / keep_prob

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        return scale_samples(inputs, self.keep_scale(ops.shape(inputs)[0]))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


def scale_samples(x, scale):
    """x (batch, ...) with sample i multiplied by scale[i]; x itself when scale is None."""
    if scale is None:
        return x
    return x * ops.reshape(ops.cast(scale, x.dtype), (-1,) + (1,) * (len(x.shape) - 1))
