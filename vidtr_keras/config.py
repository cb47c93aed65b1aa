"""Switches for the backend-dependent policies of vidtr_keras, in the style of `keras.config`.

Each policy has three states: enabled, disabled, or automatic (the default, the choice that measured
best per backend; see `vidtr_keras.backends`). A layer argument of the same name
(`JointAttention(fused_attention=...)`, `VidTrEncoderBlock(gradient_fence=...)`) wins over the switch;
left at None, the layer follows the switch.

- Fused attention: joint attention computes softmax(q k^T) v as one `keras.ops.dot_product_attention`
  call. Automatic: on PyTorch only (`backends.torch_cpu`). Never where the probabilities are returned
  or dropped out (the fused call has neither).
- Gradient fence: each encoder block passes its residual stream's gradient through an exact identity
  matmul in training, so that XLA:CPU computes it once. Automatic: on JAX on the CPU only
  (`backends.xla_cpu`). Outputs and gradients are the same either way.

>>> import vidtr_keras
>>> vidtr_keras.config.is_fused_attention_enabled() is None  # automatic
True
>>> vidtr_keras.config.disable_fused_attention()
>>> vidtr_keras.config.is_fused_attention_enabled()
False
>>> vidtr_keras.config.reset_fused_attention()
"""

_FUSED_ATTENTION = None
_GRADIENT_FENCE = None


def enable_fused_attention():
    """Joint attention runs fused wherever the probabilities are neither returned nor dropped out."""
    global _FUSED_ATTENTION
    _FUSED_ATTENTION = True


def disable_fused_attention():
    """Joint attention always runs the plain softmax(q k^T) v."""
    global _FUSED_ATTENTION
    _FUSED_ATTENTION = False


def reset_fused_attention():
    """Back to the automatic choice (the default): fused on PyTorch only."""
    global _FUSED_ATTENTION
    _FUSED_ATTENTION = None


def is_fused_attention_enabled():
    """True or False when switched, None for the automatic choice."""
    return _FUSED_ATTENTION


def enable_gradient_fence():
    """Encoder blocks fence their residual stream's gradient in training, on every backend."""
    global _GRADIENT_FENCE
    _GRADIENT_FENCE = True


def disable_gradient_fence():
    """Encoder blocks never fence their residual stream's gradient."""
    global _GRADIENT_FENCE
    _GRADIENT_FENCE = False


def reset_gradient_fence():
    """Back to the automatic choice (the default): in training on JAX on the CPU only."""
    global _GRADIENT_FENCE
    _GRADIENT_FENCE = None


def is_gradient_fence_enabled():
    """True or False when switched, None for the automatic choice."""
    return _GRADIENT_FENCE


__all__ = [
    "disable_fused_attention",
    "disable_gradient_fence",
    "enable_fused_attention",
    "enable_gradient_fence",
    "is_fused_attention_enabled",
    "is_gradient_fence_enabled",
    "reset_fused_attention",
    "reset_gradient_fence",
]
