"""Discriminators as the objective calls them: ``d(x, z)``, ``d(x_1, ..., x_M)`` and ``d(x_1, ..., x_M, z)``.

A :class:`Critic` wraps one discriminator (a Keras functional model; it adds no variables and no checkpoint
entries) and returns its logits for one input tuple, always in training mode (the authors' discriminators are in
train mode in both player steps).

* Outside :func:`mmali_tf.networks.step_scope.fixed_discriminators`, or with ``share_features=False``, a call runs
  the whole model on that tuple. Outside the scope this includes one spectral-norm power iteration per layer and
  call: the authors' semantics.
* Inside the scope with ``share_features=True`` the discriminator is one fixed function for the step, and the
  critic reuses what it has already computed. Every discriminator here maps each image input through layers that
  see only that image (its "x-part") before combining it with anything else, and no layer mixes examples, so:
  the x-part features of an image batch are computed once per step; the features of ``rows(x, index)`` are the
  same rows of ``x``'s features; a call on the same input tensors as an earlier call returns its logits. All three
  are exact (``tests/test_equivalence.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from mmali_tf.networks import step_scope

XPart = Callable[[tf.Tensor], tf.Tensor]
Head = Callable[..., tf.Tensor]  # head(features: list, *extra_inputs) -> logits


class Critic:
    """One discriminator, called on one input tuple at a time.

    Attributes:
        model: the whole discriminator (inputs: image/feature batches, then any ``z``).
        x_parts: per image input, the map from that input to the features the head combines.
        head: ``head(features, *extra)``: the rest of the network, from the x-part features and the other inputs.
        share_features: reuse x-part features and repeated calls inside a fixed-discriminator scope.
    """

    def __init__(self, model: keras.Model, x_parts: Sequence[XPart], head: Head, share_features: bool = True):
        self.model = model
        self.x_parts = list(x_parts)
        self.head = head
        self.share_features = share_features

    @property
    def name(self) -> str:
        return self.model.name

    def plain(self) -> "Critic":
        """The same discriminator without any reuse: every call runs the whole model (the executable spec)."""
        return Critic(self.model, self.x_parts, self.head, share_features=False)

    def __call__(self, *inputs: tf.Tensor) -> tf.Tensor:
        """The logits, in float32 (the losses' dtype) whatever the model computes in."""
        scope = step_scope.current()
        if scope is None or not self.share_features:
            return tf.cast(self.model(list(inputs), training=True), tf.float32)
        return scope.value(self, inputs, lambda: tf.cast(self._from_features(scope, inputs), tf.float32))

    def _from_features(self, scope: step_scope.StepScope, inputs) -> tf.Tensor:
        num = len(self.x_parts)
        features = [self._features(scope, part, x) for part, x in zip(self.x_parts, inputs[:num])]
        return self.head(features, *inputs[num:])

    def _features(self, scope: step_scope.StepScope, part: XPart, x: tf.Tensor) -> tf.Tensor:
        origin = scope.rows_of(x)
        if origin is not None:
            source, index = origin
            return tf.gather(self._features(scope, part, source), index)
        return scope.value(part, (x,), lambda: part(x))


def merge_critic(model: keras.Model, merge_layer: str) -> Critic:
    """A critic whose x-parts end at the inputs of ``merge_layer`` (a ``Concatenate`` or ``Dot`` layer).

    The x-part of image input k is the sub-model from that input to the merge layer's k-th input; the head is the
    sub-model from those features and the remaining inputs (named ``*_z``) to the output. The sub-models share the
    model's layers and variables.
    """
    merged = model.get_layer(merge_layer).input
    merged = list(merged) if isinstance(merged, (list, tuple)) else [merged]
    images = [t for t in model.inputs if not t.name.endswith("_z")]
    extra = [t for t in model.inputs if t.name.endswith("_z")]
    features = merged[: len(images)]
    parts = [keras.Model(images[k], features[k], name=f"{model.name}_xpart{k}") for k in range(len(images))]
    head_model = keras.Model(features + extra, model.outputs[0], name=f"{model.name}_head")

    def head(feats, *rest):
        return head_model(list(feats) + list(rest), training=True)

    return Critic(model, [lambda x, p=p: p(x, training=True) for p in parts], head)
