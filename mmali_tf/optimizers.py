"""Adam with PyTorch's update formula (the authors train with ``torch.optim.Adam``).

Keras' Adam folds the bias corrections into the step size and adds epsilon to ``sqrt(v)``::

    keras:  p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    torch:  p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

These agree except for where epsilon enters: Keras' formula is torch's with ``eps * sqrt(1 - b2^t)``, i.e. an
epsilon about 30x smaller at t = 1 with b2 = 0.999. With GAN gradients many elements have ``|g|`` within a few
decades of 1e-8, where ``g / (|g| + eps)`` is steep, so the first updates of those elements differ by up to a
large fraction of the learning rate (docs/objective.md, "Optimizer"). :class:`TorchAdam` computes torch's formula,
with torch's moment updates, and keeps Keras' state (the same variables, so checkpoints are unchanged).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="mmali_tf")
class TorchAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` updating as ``torch.optim.Adam`` (no weight decay, no amsgrad)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("TorchAdam does not implement amsgrad")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        # torch computes the bias corrections as Python floats: in float64 here (in float32, 1 - 0.999 is off by
        # 1.3e-5 relative, which shifts every update by 6e-6 relative).
        # (keras.ops.cast would round a Python float to float32 first, so this uses tf directly.)
        step = tf.cast(self.iterations + 1, tf.float64)
        bias_correction1 = 1.0 - tf.pow(tf.constant(self.beta_1, tf.float64), step)
        bias_correction2 = 1.0 - tf.pow(tf.constant(self.beta_2, tf.float64), step)
        step_size = tf.cast(tf.cast(learning_rate, tf.float64) / bias_correction1, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        # torch: m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, value=1 - b2)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign(v, ops.add(ops.multiply(v, self.beta_2), ops.multiply(ops.square(gradient), 1 - self.beta_2)))
        denominator = ops.add(ops.divide(ops.sqrt(v), tf.cast(tf.sqrt(bias_correction2), dtype)), self.epsilon)
        self.assign_sub(variable, ops.multiply(step_size, ops.divide(m, denominator)))

    def first_moment(self, variable):
        """The running mean of ``variable``'s gradients (after one step from fresh state: ``(1 - beta_1) * g``)."""
        return self._momentums[self._get_variable_index(variable)]
