"""Spectral normalisation that behaves like ``torch.nn.utils.spectral_norm``.

Keras 3's ``keras.layers.SpectralNormalization`` overwrites the wrapped kernel with ``kernel / sigma`` on every
training call, so the optimiser updates the *normalised* weight and no gradient flows through ``sigma``. PyTorch
does something else, and this module reproduces it:

* the trainable variable is the raw weight (PyTorch's ``weight_orig``; here ``kernel``), which a forward pass never
  modifies;
* two persistent, non-trainable vectors ``u`` (length ``out``) and ``v`` (length ``in``), initialised from N(0, 1) and
  normalised;
* with ``W`` the weight as an ``[out, in]`` matrix (for a Keras kernel: ``reshape(kernel, [-1, out])`` transposed), a
  training-mode forward first runs one power iteration with ``W`` held constant::

      v <- normalize(W^T u),   u <- normalize(W v),   normalize(x) = x / max(||x||_2, eps),  eps = 1e-12

  stores ``u`` and ``v``, and then uses ``W / sigma`` with ``sigma = u^T W v``. ``u`` and ``v`` are constants for
  autodiff, but ``sigma`` is a function of ``W``, so the gradient flows through ``sigma``;
* an inference-mode forward uses the stored ``u`` and ``v`` and updates nothing.

One call for several forwards. A critic that scores several input tuples in one step (``mmali_tf.networks.critic``)
concatenates them on the batch axis and calls the network once, inside :func:`forwards`. Every layer then runs the
power iterations of all those forwards (one before each, in order, as torch does: ``n`` iterations for ``n``
tuples) and divides the rows of tuple ``j`` by ``sigma_j``, the estimate after the ``j``-th iteration::

    outputs[rows of tuple j] = inputs[rows of tuple j] @ W^T / sigma_j + bias

which equals the separate forwards term by term (``W v / sigma = (W / sigma) v``), gradient through every
``sigma_j`` included. With ``separate_estimates=False`` the call runs one power iteration and one ``sigma`` for all
its rows (the ``per_step`` schedule: one update per discriminator layer and player step).

Column order: PyTorch flattens a conv weight ``[out, in, kh, kw]`` to ``[out, in*kh*kw]``, this module flattens the
Keras kernel ``[kh, kw, in, out]`` to ``[out, kh*kw*in]``. The two differ by a permutation of the columns (and so of the
entries of ``v``), which changes neither the singular values nor the power iteration.

``u`` and ``v`` are created with ``aggregation="only_first_replica"``, so they can be assigned from replica context
under ``tf.distribute.MirroredStrategy``. Everything is plain TF ops, so the layers run under
``tf.function(jit_compile=True)`` and inside a ``tf.GradientTape``.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence

import keras
import tensorflow as tf

EPS = 1e-12
"""PyTorch's default ``eps`` for ``spectral_norm``."""

INIT_STDDEV = 0.02
"""Standard deviation of the N(0, 0.02) weight initialisation used throughout the reference code."""

LEAKY_RELU_SLOPE = 0.2
"""Negative slope of every LeakyReLU in the reference discriminators (Keras' default is 0.3)."""

_PACKAGE = "mmali_tf"

_FORWARDS = threading.local()


@contextlib.contextmanager
def forwards(count: int, separate_estimates: bool = True) -> Iterator[None]:
    """Within the block, each training call of a spectrally normalised layer stands for ``count`` forwards on equal,
    consecutive shares of its rows: ``count`` power iterations and one sigma per share (``separate_estimates``), or
    one iteration and one sigma for all rows."""
    previous = current_forwards()
    _FORWARDS.value = (int(count), bool(separate_estimates))
    try:
        yield
    finally:
        _FORWARDS.value = previous


def current_forwards() -> tuple[int, bool]:
    """(count, separate_estimates) of the innermost :func:`forwards` block of this thread; (1, True) outside."""
    return getattr(_FORWARDS, "value", (1, True))


def l2_normalize(x: tf.Tensor, eps: float = EPS) -> tf.Tensor:
    """``x / max(||x||_2, eps)``, like ``torch.nn.functional.normalize(x, dim=0, eps=eps)`` for a vector."""
    return x / tf.maximum(tf.norm(x), tf.cast(eps, x.dtype))


def normal_init(stddev: float = INIT_STDDEV) -> keras.initializers.Initializer:
    """A *fresh* ``RandomNormal(0, stddev)`` initialiser.

    An unseeded Keras 3 initialiser draws its seed once, at construction, so sharing one instance between layers would
    give them identical weights. Every layer must get its own instance.
    """
    return keras.initializers.RandomNormal(mean=0.0, stddev=stddev)


def leaky_relu(name: str) -> keras.layers.LeakyReLU:
    """The discriminators' activation: LeakyReLU with negative slope 0.2, set explicitly."""
    return keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE, name=name)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UnitNormal(keras.initializers.RandomNormal):
    """A vector drawn from N(0, 1) and scaled to unit L2 norm (PyTorch's initial ``u`` and ``v``)."""

    def __init__(self, eps: float = EPS, seed=None):
        super().__init__(mean=0.0, stddev=1.0, seed=seed)
        self.eps = eps

    def __call__(self, shape, dtype=None):
        return l2_normalize(tf.convert_to_tensor(super().__call__(shape, dtype=dtype)), self.eps)

    def get_config(self):
        return {"eps": self.eps, "seed": super().get_config()["seed"]}


class _SpectralNormLayer(keras.layers.Layer):
    """Shared machinery: raw ``kernel`` (+ ``bias``) and the ``sn_u``/``sn_v`` power-iteration vectors."""

    def __init__(
        self,
        *,
        use_bias: bool = True,
        kernel_initializer=None,
        bias_initializer="zeros",
        eps: float = EPS,
        **kwargs,
    ):
        # The power iteration and sigma stay in the variables' float32 under a mixed policy; call() casts the
        # normalised kernel (and the inputs) to the compute dtype itself.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.use_bias = bool(use_bias)
        if kernel_initializer is None:
            kernel_initializer = normal_init()
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.eps = float(eps)
        self.kernel = None
        self.bias = None
        self.sn_u = None
        self.sn_v = None

    def _build_weights(self, kernel_shape: Sequence[int]) -> None:
        out_dim = int(kernel_shape[-1])
        in_dim = math.prod(int(d) for d in kernel_shape[:-1])
        self.kernel = self.add_weight(
            name="kernel", shape=tuple(kernel_shape), initializer=self.kernel_initializer, trainable=True
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(out_dim,), initializer=self.bias_initializer, trainable=True
            )
        self.sn_u = self._add_power_iteration_vector("sn_u", out_dim)
        self.sn_v = self._add_power_iteration_vector("sn_v", in_dim)

    def _add_power_iteration_vector(self, name: str, size: int) -> keras.Variable:
        """A non-trainable, replica-local (``on_read``, ``only_first_replica``) unit vector.

        ``add_weight`` would make it a mirrored (``on_write``) variable. Assigning one of those from replica context
        goes through ``merge_call``, which fails when the per-replica step is itself a ``tf.function`` (the
        per-replica ``jit_compile`` recipe for XLA under MirroredStrategy). An ``on_read`` variable is assigned
        locally on each replica; every replica computes the same ``u``/``v`` from the same weights, and reads from
        cross-replica context (checkpoints, ``.numpy()``) return the first replica's value.
        """
        with keras.name_scope(self.name, caller=self):
            variable = keras.Variable(
                initializer=UnitNormal(self.eps),
                shape=(size,),
                dtype=self.variable_dtype,
                trainable=False,
                aggregation="only_first_replica",
                synchronization="on_read",
                name=name,
            )
        return variable

    def _kernel_matrix(self) -> tf.Tensor:
        """The kernel as ``[in, out]`` (``K``); PyTorch's ``[out, in]`` weight matrix is ``W = K^T``."""
        kernel = tf.convert_to_tensor(self.kernel)
        return tf.reshape(kernel, [-1, kernel.shape[-1]])

    def sigmas(self, count: int = 1) -> tf.Tensor:
        """``[count]`` estimates of the top singular value for ``count`` training forwards in order: one power
        iteration before each (weight held constant), the last ``(u, v)`` stored. Differentiable in the kernel
        (``sigma_j = u_j^T W v_j`` with ``u_j``, ``v_j`` constants), like torch's."""
        k_mat = self._kernel_matrix()
        k_const = tf.stop_gradient(k_mat)
        u = tf.reshape(tf.convert_to_tensor(self.sn_u), [1, -1])
        us, vs = [], []
        for _ in range(count):
            v = l2_normalize(tf.matmul(u, k_const, transpose_b=True), self.eps)  # (W^T u)^T = u^T K^T
            u = l2_normalize(tf.matmul(v, k_const), self.eps)  # (W v)^T = v^T K
            us.append(u)
            vs.append(v)
        self.sn_u.assign(tf.reshape(u, [-1]))
        self.sn_v.assign(tf.reshape(v, [-1]))
        return self._sigma(k_mat, tf.concat(us, axis=0), tf.concat(vs, axis=0))

    def _stored_sigma(self) -> tf.Tensor:
        u, v = (tf.reshape(tf.convert_to_tensor(x), [1, -1]) for x in (self.sn_u, self.sn_v))
        return self._sigma(self._kernel_matrix(), u, v)

    @staticmethod
    def _sigma(k_mat: tf.Tensor, us: tf.Tensor, vs: tf.Tensor) -> tf.Tensor:
        """Row j: ``u_j^T W v_j = u_j . (v_j K)`` for the rows of ``us`` ``[n, out]`` and ``vs`` ``[n, in]``."""
        return tf.reduce_sum(us * tf.matmul(vs, k_mat), axis=1)

    def normalized_kernel(self, training=None) -> tf.Tensor:
        """``kernel / sigma``, in the kernel's shape: with ``training`` true after one power iteration, else with
        the stored ``u``, ``v``."""
        sigma = self.sigmas(1)[0] if training else self._stored_sigma()[0]
        return tf.convert_to_tensor(self.kernel) / sigma

    def compute_kernel(self, training=None) -> tf.Tensor:
        """:meth:`normalized_kernel` in the layer's compute dtype (bfloat16 under ``mixed_bfloat16``)."""
        return tf.cast(self.normalized_kernel(training), self.compute_dtype)

    def raw_kernel(self) -> tf.Tensor:
        """The unnormalised kernel in the compute dtype (divide the products by :meth:`sigmas` afterwards)."""
        return tf.cast(self.kernel, self.compute_dtype)

    def normalize_rows(self, products: tf.Tensor, training) -> tf.Tensor:
        """Products of the inputs with :meth:`raw_kernel` divided by sigma, plus the bias: in training mode with the
        estimates of the current :func:`forwards` (rows of forward j by ``sigma_j``), else with the stored vectors."""
        if isinstance(training, (tf.Tensor, tf.Variable)):  # a traced flag: decide in the graph
            return tf.cond(tf.cast(training, tf.bool), lambda: self.normalize_rows(products, True),
                           lambda: self.normalize_rows(products, False))
        if not training:
            return self._add_bias(products / tf.cast(self._stored_sigma()[0], products.dtype))
        count, separate = current_forwards()
        if not separate or count == 1:
            return self._add_bias(products / tf.cast(self.sigmas(1)[0], products.dtype))
        # Each forward's rows times its 1 / sigma_j (a multiplication by one [count, 1, ...] tensor).
        inverse = tf.reshape(tf.cast(1.0 / self.sigmas(count), products.dtype), [count] + [1] * products.shape.rank)
        shape = tf.shape(products)
        per_forward = tf.reshape(products, tf.concat([[count, -1], shape[1:]], axis=0))
        return self._add_bias(tf.reshape(per_forward * inverse, shape))

    def _add_bias(self, outputs: tf.Tensor) -> tf.Tensor:
        return outputs + self.compute_bias() if self.use_bias else outputs

    def compute_bias(self) -> tf.Tensor:
        return tf.cast(self.bias, self.compute_dtype)

    def sigma(self) -> tf.Tensor:
        """The current estimate ``u^T W v`` of the top singular value, from the stored ``u``/``v`` (no update)."""
        return self._stored_sigma()[0]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "eps": self.eps,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SNDense(_SpectralNormLayer):
    """A spectrally normalised fully connected layer, ``y = x (K / sigma) + b`` (no activation).

    Args:
        units: output width.
        use_bias: add a trainable bias (zeros by default).
        kernel_initializer: defaults to a fresh ``RandomNormal(0, 0.02)``.
        bias_initializer: defaults to zeros.
        eps: the normalisation epsilon of the power iteration (PyTorch: 1e-12).
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        if self.units <= 0:
            raise ValueError(f"SNDense needs units > 0, got {units}.")

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(f"SNDense '{self.name}' needs a known last input dimension, got shape {input_shape}.")
        self._build_weights((int(in_dim), self.units))

    def call(self, inputs, training=None):
        return self.normalize_rows(tf.matmul(tf.cast(inputs, self.compute_dtype), self.raw_kernel()), training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config["units"] = self.units
        return config


def _pair(value, what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}.")
    return pair


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SNConv2D(_SpectralNormLayer):
    """A spectrally normalised 2-D convolution on NHWC inputs (no activation, no dilation, no groups).

    ``padding="same"`` with a 4x4 kernel and stride 2 pads one pixel on each side, which is PyTorch's
    ``Conv2d(k=4, s=2, p=1)``; ``"valid"`` is ``p=0``.
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        if self.filters <= 0:
            raise ValueError(f"SNConv2D needs filters > 0, got {filters}.")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = str(padding).lower()
        if self.padding not in ("same", "valid"):
            raise ValueError(f"SNConv2D padding must be 'same' or 'valid', got {padding!r}.")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"SNConv2D '{self.name}' needs NHWC inputs with known channels, got {input_shape}.")
        self._build_weights(self.kernel_size + (int(input_shape[-1]), self.filters))

    def _covers_input(self, inputs) -> bool:
        """A "valid" kernel as large as the input: one output pixel, i.e. a dense layer on the flattened input."""
        return self.padding == "valid" and tuple(inputs.shape[1:3]) == self.kernel_size

    def call(self, inputs, training=None):
        kernel = self.raw_kernel()
        inputs = tf.cast(inputs, self.compute_dtype)
        if self._covers_input(inputs):
            # The same sums as the convolution (NHWC rows flatten in the kernel's (h, w, c) order), as one matmul:
            # oneDNN runs this 1x1-output convolution and its gradients slower than the matmul (BUILD.md, "Speed on CPU").
            rows = tf.reshape(inputs, [-1, math.prod(self.kernel_size) * inputs.shape[-1]])
            outputs = tf.matmul(rows, tf.reshape(kernel, [-1, self.filters]))
            outputs = tf.reshape(outputs, [-1, 1, 1, self.filters])
        else:
            outputs = tf.nn.conv2d(
                inputs, kernel, strides=(1,) + self.strides + (1,), padding=self.padding.upper(), data_format="NHWC"
            )
        return self.normalize_rows(outputs, training)

    def compute_output_shape(self, input_shape):
        spatial = []
        for size, k, s in zip(input_shape[1:3], self.kernel_size, self.strides):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // s))
            else:
                spatial.append(-(-(size - k + 1) // s))
        return (input_shape[0], spatial[0], spatial[1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
            }
        )
        return config
