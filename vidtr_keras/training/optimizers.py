"""The optimiser of the released training recipe."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vidtr_keras")
class CoupledSGD(keras.optimizers.Optimizer):
    """SGD with momentum and L2 weight decay added to the gradient, as `torch.optim.SGD` does (the
    optimiser of the released training recipe):

        g = grad + l2_weight_decay * w;   buf = momentum * buf + g;   w = w - lr * buf

    Keras' `SGD(weight_decay=...)` decays the weights separately (decoupled) and keeps its velocity
    scaled by the learning rate, which differs after every learning-rate step.

    Args:
        learning_rate: float or schedule.
        momentum: momentum factor (0.9).
        l2_weight_decay: L2 coefficient (1e-5), applied to every trainable variable.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, l2_weight_decay=1e-5, name="coupled_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}.")
        if float(l2_weight_decay) < 0:
            raise ValueError(f"l2_weight_decay must be >= 0, got {l2_weight_decay}.")
        self.momentum = float(momentum)
        self.l2_weight_decay = float(l2_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = [self.add_variable_from_reference(v, name="momentum") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
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
        config.update({"momentum": self.momentum, "l2_weight_decay": self.l2_weight_decay})
        return config
