"""The optimisers: the released recipe's `CoupledSGD`, and `LayerDecayAdamW` of the fine-tuning recipe.

Both can scale the learning rate of each variable by its depth in the backbone (layer-wise learning-rate
decay, BEiT section 2.3 / timm's `param_groups_layer_decay`, VideoMAE's fine-tuning): with `num_layers` L
encoder blocks and decay D, block i (0-based) learns at D ** (L - i) x lr, the embedding (tubelet projection,
position embedding, class tokens) at D ** (L + 1) x lr, and everything after the blocks (final norm,
classifier) at lr. The scale multiplies the learning rate of the variable's update itself: with Adam,
scaling the gradient would not scale the step (Adam divides by the gradient's own scale), so
`update_step` gets the scaled learning rate, as a torch parameter group with its own `lr` does.
"""

import re

import keras
from keras import ops

# The layers of `VidTrBackbone` that form its embedding (timm's `patch_embed`, `pos_embed`, `cls_token`).
EMBEDDING_LAYERS = ("patch_embedding", "position_embedding", "class_tokens")
# Variables AdamW does not decay besides biases and norms (timm's `no_weight_decay()`: pos_embed, cls_token).
NO_WEIGHT_DECAY_LAYERS = ("position_embedding", "class_tokens")
_BLOCK = re.compile(r"encoder_block_(\d+)")


def layer_id(path, num_layers):
    """The depth of a model variable for layer-wise decay, from its path: 0 for the embedding, i + 1 for
    encoder block i, `num_layers` + 1 for everything after the blocks (timm's `get_layer_id_for_vit`)."""
    for part in str(path).split("/"):
        if part in EMBEDDING_LAYERS:
            return 0
        match = _BLOCK.fullmatch(part)
        if match:
            return int(match.group(1)) + 1
    return int(num_layers) + 1


def layer_decay_scale(path, num_layers, layer_decay):
    """The learning-rate scale of a variable: `layer_decay` ** (num_layers + 1 - layer_id)."""
    if layer_decay is None:
        return 1.0
    return float(layer_decay) ** (int(num_layers) + 1 - layer_id(path, num_layers))


def uses_weight_decay(path, shape):
    """AdamW's decoupled decay skips biases and norms (1-D variables), the position embedding and the class
    tokens, as timm's and VideoMAE's fine-tuning recipes do."""
    if len(shape) <= 1:
        return False
    return not any(part in NO_WEIGHT_DECAY_LAYERS for part in str(path).split("/"))


def check_layer_decay(layer_decay, num_layers):
    if layer_decay is None:
        return None
    if not 0.0 < float(layer_decay) <= 1.0:
        raise ValueError(f"`layer_decay` must be in (0, 1], got {layer_decay}.")
    if num_layers is None or int(num_layers) < 1:
        raise ValueError(f"`layer_decay` needs the number of encoder blocks (`num_layers`), got {num_layers!r}.")
    return float(layer_decay)


class _LayerDecay:
    """Per-variable learning-rate scales from the variables' paths (see the module docstring)."""

    def _build_scales(self, variables):
        self._lr_scales = [layer_decay_scale(v.path, self.num_layers, self.layer_decay) for v in variables]

    def _scaled(self, learning_rate, variable):
        if self.layer_decay is None:
            return learning_rate
        scale = self._lr_scales[self._get_variable_index(variable)]
        return learning_rate if scale == 1.0 else ops.multiply(learning_rate, ops.cast(scale, learning_rate.dtype))

    def learning_rate_scales(self):
        """{variable path: learning-rate scale} of the variables the optimiser was built on."""
        return {v.path: s for v, s in zip(self._trainable_variables, self._lr_scales)}


@keras.saving.register_keras_serializable(package="vidtr_keras")
class CoupledSGD(_LayerDecay, keras.optimizers.Optimizer):
    """SGD with momentum and L2 weight decay added to the gradient, as `torch.optim.SGD` does (the
    optimiser of the released training recipe):

        g = grad + l2_weight_decay * w;   buf = momentum * buf + g;   w = w - lr * buf

    Keras' `SGD(weight_decay=...)` decays the weights separately (decoupled) and keeps its velocity
    scaled by the learning rate, which differs after every learning-rate step.

    Args:
        learning_rate: float or schedule.
        momentum: momentum factor (0.9).
        l2_weight_decay: L2 coefficient (1e-5), applied to every trainable variable.
        layer_decay: None (the released recipe), or the layer-wise learning-rate decay in (0, 1] (module
            docstring); needs `num_layers`.
        num_layers: encoder blocks of the backbone (for `layer_decay`).
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        l2_weight_decay=1e-5,
        layer_decay=None,
        num_layers=None,
        name="coupled_sgd",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}.")
        if float(l2_weight_decay) < 0:
            raise ValueError(f"l2_weight_decay must be >= 0, got {l2_weight_decay}.")
        self.momentum = float(momentum)
        self.l2_weight_decay = float(l2_weight_decay)
        self.layer_decay = check_layer_decay(layer_decay, num_layers)
        self.num_layers = None if num_layers is None else int(num_layers)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = [self.add_variable_from_reference(v, name="momentum") for v in variables]
        self._build_scales(variables)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(self._scaled(learning_rate, variable), variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2_weight_decay:
            gradient = ops.add(gradient, ops.multiply(ops.cast(self.l2_weight_decay, variable.dtype), variable))
        if self.momentum:
            buf = self.momentums[self._get_variable_index(variable)]
            self.assign(buf, ops.add(ops.multiply(ops.cast(self.momentum, variable.dtype), buf), gradient))
            gradient = buf
        self.assign_sub(variable, ops.multiply(learning_rate, gradient))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "l2_weight_decay": self.l2_weight_decay,
                "layer_decay": self.layer_decay,
                "num_layers": self.num_layers,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="vidtr_keras")
class LayerDecayAdamW(_LayerDecay, keras.optimizers.AdamW):
    """Keras' `AdamW` with the parameter groups of the ViT fine-tuning recipe (timm, VideoMAE):

    - decoupled weight decay, w = w - lr x weight_decay x w before the Adam step (`torch.optim.AdamW`),
      skipping biases, norms, the position embedding and the class tokens (`uses_weight_decay`);
    - optionally layer-wise learning-rate decay (module docstring): both the decay and the Adam step of a
      variable use its scaled learning rate, as in a torch parameter group with `lr = scale x lr`.

    The rules are functions of the variables' paths, so they are part of the optimiser (and its saved
    config) rather than a `exclude_from_weight_decay` call that a restored optimiser would not repeat.

    Args:
        learning_rate: float or schedule.
        weight_decay: decoupled decay coefficient (0.05 in VideoMAE's fine-tuning).
        layer_decay: None, or the layer-wise decay in (0, 1]; needs `num_layers`.
        num_layers: encoder blocks of the backbone.
        epsilon: 1e-8 (torch's and timm's; Keras' AdamW default is 1e-7).
        **kwargs: `beta_1`, `beta_2` and the other arguments of `keras.optimizers.AdamW`.
    """

    def __init__(
        self,
        learning_rate=1e-3,
        weight_decay=0.05,
        layer_decay=None,
        num_layers=None,
        epsilon=1e-8,
        name="layer_decay_adamw",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, epsilon=epsilon, name=name, **kwargs)
        if float(weight_decay) < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
        self.layer_decay = check_layer_decay(layer_decay, num_layers)
        self.num_layers = None if num_layers is None else int(num_layers)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._build_scales(variables)
        self._decays = [uses_weight_decay(v.path, v.shape) for v in variables]

    def _apply_weight_decay(self, variables):
        # Applied per variable in `update_step`, with the variable's own (scaled) learning rate; every
        # backend's update path (TensorFlow's distributed one included) goes through `update_step`.
        return

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = self._scaled(learning_rate, variable)
        if self.weight_decay and self._decays[self._get_variable_index(variable)]:
            decay = ops.multiply(ops.cast(self.weight_decay, variable.dtype), ops.cast(learning_rate, variable.dtype))
            self.assign_sub(variable, ops.multiply(variable, decay))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"layer_decay": self.layer_decay, "num_layers": self.num_layers})
        return config
