"""Discriminators as the objective calls them: ``critic.score({name: inputs, ...}) -> {name: logits, ...}``.

A player step scores several input tuples with each discriminator (docs/objective.md, "Which network sees which
tuple"). The objective hands a critic all of them at once, named and in the order in which the authors' code makes
its forwards; the critic returns the logits of each, in float32. The discriminators are always in training mode
(the authors' discriminators are in train mode in both player steps), so every scoring updates the spectral-norm
vectors.

How a :class:`Critic` scores them is its own business, and every way computes what separate forwards compute:

* ``batched``: the tuples are concatenated on the batch axis (our networks never mix examples) and the model runs
  once inside :func:`mmali_tf.networks.spectral_norm.forwards`: each spectrally normalised layer runs one power
  iteration per tuple and divides each tuple's rows by its own sigma, exactly as if the tuples had been scored one
  after the other (the keras-io GAN guide's ``concat([generated, real])``, made exact for spectral norm). Few large
  matrix products instead of many small ones: right for small critics that score many tuples.
* not batched (:meth:`Critic.one_by_one`, the default of :func:`merge_critic`): one forward per tuple, in order,
  as the authors' code. Right for large critics, whose forwards run side by side; also the executable
  specification that the batched scoring is tested against (``tests/test_equivalence.py``).
* ``separate_estimates=False`` (the ``per_step`` schedule): one power iteration and one sigma for all tuples of the
  call. The discriminator is then one fixed function for the call, so tuples that show it the same image tensor
  share that image's features (:class:`SharedImageCritic`).

Subclasses may compute the batched scores more cleverly as long as the result is the same: the MNIST (x, z) critic
(:class:`mmali_tf.networks.mnist.MNISTXZCritic`) multiplies each distinct image batch by its first layer's kernel
once, because ``[x, z] K / sigma_j = (x K_x + z K_z) / sigma_j``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf

from mmali_tf.networks import spectral_norm

Tuples = Mapping[str, Sequence[tf.Tensor]]


class Critic:
    """One discriminator (a Keras functional model; the critic adds no variables and no checkpoint entries).

    Attributes:
        model: the discriminator; inputs: image/feature batches, then any ``z``.
        batched: score all tuples of a call in one forward of the model.
        separate_estimates: one spectral-norm estimate per tuple (the authors' schedule, ``per_forward``), or one
            for the whole call (``per_step``).
    """

    def __init__(self, model: keras.Model, batched: bool = True, separate_estimates: bool = True):
        self.model = model
        self.batched = batched
        self.separate_estimates = separate_estimates

    @property
    def name(self) -> str:
        return self.model.name

    def with_schedule(self, separate_estimates: bool) -> "Critic":
        """The same discriminator with the given spectral-norm schedule (one estimate for a whole call is only
        defined for batched scoring)."""
        return self._copy(batched=self.batched or not separate_estimates, separate_estimates=separate_estimates)

    def one_by_one(self) -> "Critic":
        """The same discriminator scoring one tuple per forward (the executable specification)."""
        return self._copy(batched=False, separate_estimates=self.separate_estimates)

    def _copy(self, **settings) -> "Critic":
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(settings)
        return copy

    def score(self, tuples: Tuples) -> dict[str, tf.Tensor]:
        """The logits ``[B, classes]`` (float32) of every named tuple of equal-sized input batches."""
        tuples = {name: tuple(inputs) for name, inputs in tuples.items()}
        if not self.batched:
            return {name: self._forward(inputs, 1) for name, inputs in tuples.items()}
        count = len(tuples)
        with spectral_norm.forwards(count, self.separate_estimates):
            logits = self._score_concatenated(list(tuples.values()))
        return dict(zip(tuples, tf.split(logits, count, axis=0)))

    def _score_concatenated(self, tuples: list[tuple]) -> tf.Tensor:
        """The logits of all ``tuples``, concatenated on the batch axis in their order, inside ``forwards``."""
        inputs = [concat_rows(column, self.model.compute_dtype) for column in zip(*tuples)]
        return tf.cast(self.model(inputs, training=True), tf.float32)

    def _forward(self, inputs: tuple, count: int) -> tf.Tensor:
        with spectral_norm.forwards(count, self.separate_estimates):
            return tf.cast(self.model(list(inputs), training=True), tf.float32)


class SharedImageCritic(Critic):
    """A critic whose images go through an "x-part" that sees nothing else before the rest of the network (its
    "head") combines them with the other inputs.

    Under one spectral-norm estimate per call (``separate_estimates=False``) the x-part is a fixed function within
    the call, so each distinct image tensor among the tuples goes through it once and the tuples that show the same
    tensor share its features. With separate estimates the call is scored as by :class:`Critic`.

    Attributes:
        x_parts: per image input, ``x_part(images) -> features`` (training mode).
        head: ``head(features, *other_inputs) -> logits`` (training mode).
    """

    def __init__(self, model, x_parts, head, batched: bool = True, separate_estimates: bool = True):
        super().__init__(model, batched, separate_estimates)
        self.x_parts = list(x_parts)
        self.head = head

    def _score_concatenated(self, tuples: list[tuple]) -> tf.Tensor:
        if self.separate_estimates:
            return super()._score_concatenated(tuples)
        num_images, dtype = len(self.x_parts), self.model.compute_dtype
        features = [distinct_rows(part, [t[k] for t in tuples], dtype) for k, part in enumerate(self.x_parts)]
        others = [concat_rows([t[i] for t in tuples], dtype) for i in range(num_images, len(tuples[0]))]
        return tf.cast(self.head(features, *others), tf.float32)


def concat_rows(batches: Sequence[tf.Tensor], dtype) -> tf.Tensor:
    """The batches, cast to ``dtype`` (decoded images may be in a mixed policy's compute dtype), one after another
    on the batch axis."""
    batches = [tf.cast(b, dtype) for b in batches]
    return tf.concat(batches, axis=0) if len(batches) > 1 else batches[0]


def distinct_rows(fn, batches: Sequence[tf.Tensor], dtype) -> tf.Tensor:
    """``concat([fn(b) for b in batches])`` (each batch cast to ``dtype``) computing ``fn`` once per distinct tensor
    object among ``batches`` (``fn`` maps rows independently)."""
    distinct: list[tf.Tensor] = []
    for batch in batches:
        if not any(batch is seen for seen in distinct):
            distinct.append(batch)
    outputs = fn(concat_rows(distinct, dtype))
    if len(distinct) == len(batches):
        return outputs
    parts = tf.split(outputs, len(distinct), axis=0) if len(distinct) > 1 else [outputs]
    return tf.concat([parts[next(i for i, seen in enumerate(distinct) if seen is batch)] for batch in batches], axis=0)


def merge_critic(model: keras.Model, merge_layer: str, batched: bool = False, **settings) -> SharedImageCritic:
    """A critic whose x-parts end at the inputs of ``merge_layer`` (a ``Concatenate`` or ``Dot`` layer), scoring
    each tuple in its own forward unless ``batched``: these are the convolutional and the large critics, whose
    tuples as separate forwards are independent chains of large products that the cores run side by side, where one
    batched forward would be one long chain on one core (one thread per op, the CPU default; BUILD.md, "Speed on
    CPU", has the measurements).

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

    return SharedImageCritic(model, [lambda x, p=p: p(x, training=True) for p in parts], head, batched=batched,
                             **settings)
