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

import math

import keras
import numpy as np
import tensorflow as tf


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (inside a distributed update: this device's copy)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


@keras.saving.register_keras_serializable(package="mmali_tf")
class TorchAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` updating as ``torch.optim.Adam`` (no weight decay, no amsgrad)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("TorchAdam does not implement amsgrad")

    def update_step(self, gradient, variable, learning_rate):
        # torch's step, rewritten:  p -= lr * sqrt(bc2) / bc1 * m / (sqrt(v) + eps * sqrt(bc2))
        # which is TensorFlow's fused ApplyAdam kernel (one op per variable instead of a dozen) with beta powers 0,
        # the step size lr * sqrt(bc2) / bc1 and epsilon eps * sqrt(bc2). Its moment updates are torch's lerp and
        # addcmul, except that the kernel weighs g^2 by 1 - beta_2 computed in float32 where torch uses the float64
        # value: its v is torch's times r^2 (r^2 = 0.99998713 for beta_2 = 0.999) at every step, which the step
        # size and epsilon absorb (both times r).
        step_size, epsilon = self._torch_scalars(learning_rate, variable.dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        zero = tf.zeros([], variable.dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(m), v=_handle(v), beta1_power=zero, beta2_power=zero, lr=step_size,
            beta1=tf.constant(self.beta_1, variable.dtype), beta2=tf.constant(self.beta_2, variable.dtype),
            epsilon=epsilon, grad=tf.cast(gradient, variable.dtype))

    def _torch_scalars(self, learning_rate, dtype):
        """(lr * sqrt(bc2) / bc1, eps * sqrt(bc2)) of this step, computed once per traced graph.

        torch computes the bias corrections ``bc = 1 - beta^t`` as Python floats: in float64 here (in float32,
        1 - 0.999 is off by 1.3e-5 relative, which would shift every update by 6e-6 relative).
        """
        graph = tf.compat.v1.get_default_graph() if not tf.executing_eagerly() else None
        cached = getattr(self, "_scalars_cache", None)
        if graph is not None and cached is not None and cached[0] is graph and cached[1] == dtype:
            return cached[2]
        step = tf.cast(self.iterations + 1, tf.float64)
        sqrt_bc2 = tf.sqrt(1.0 - tf.pow(tf.constant(self.beta_2, tf.float64), step))
        bc1 = 1.0 - tf.pow(tf.constant(self.beta_1, tf.float64), step)
        beta_2_in_kernel = float(np.float32(self.beta_2)) if dtype == tf.float32 else self.beta_2
        r = math.sqrt((1.0 - beta_2_in_kernel) / (1.0 - self.beta_2)) if self.beta_2 < 1.0 else 1.0
        scalars = (tf.cast(tf.cast(learning_rate, tf.float64) * sqrt_bc2 / bc1 * r, dtype),
                   tf.cast(self.epsilon * sqrt_bc2 * r, dtype))
        if graph is not None:
            self._scalars_cache = (graph, dtype, scalars)
        return scalars

    def first_moment(self, variable):
        """The running mean of ``variable``'s gradients (after one step from fresh state: ``(1 - beta_1) * g``)."""
        return self._momentums[self._get_variable_index(variable)]
