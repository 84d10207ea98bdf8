"""Discriminators split into per-image "x-parts" and the rest, so that shared images are processed once.

Every discriminator here first maps each image input through layers that see only that image, then combines the
results with everything else (``z``, the other modalities)::

    D(x_1, ..., x_K, *extra) = head(x_part_1(x_1), ..., x_part_K(x_K), *extra)

and every layer acts on each example separately, so ``D`` on a batch whose images are rows of a smaller image batch
(``x[rows]``) equals ``head`` on the same rows of ``x_part(x)``. The MMALI objective feeds the same real batch to a
discriminator with several ``z`` (and in-batch permutations of it), so computing the x-part once per distinct batch
removes most of the convolution work (:mod:`mmali_tf.objective` uses this through :meth:`SplitCritic.logits`).

The split never changes the model: a :class:`SplitCritic` is a view on the existing Keras model (functional
sub-models share its layers and variables; nothing is added to checkpoints).

Spectral normalisation: a layer's power iteration runs when the layer is called with ``training=True``. One
:meth:`SplitCritic.logits` call updates each layer exactly once, as one whole-model call does: x-parts run with
``training`` on the first batch and ``training=False`` (the vectors just stored) on the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


class SplitCritic:
    """A discriminator that can be evaluated on several input tuples sharing image batches.

    Attributes:
        model: the whole discriminator; ``critic(inputs, training=...)`` calls it unchanged.
        num_images: how many leading inputs are images; the remaining inputs (e.g. ``z``) go to the head.
    """

    def __init__(self, model: keras.Model, num_images: int):
        self.model = model
        self.num_images = num_images

    def __call__(self, inputs, training=None):
        return self.model(inputs, training=training)

    def logits(self, images: Sequence[Sequence[tf.Tensor]], picks: Sequence[Sequence[tuple[int, tf.Tensor | None]]],
               extra: Sequence[tf.Tensor], training=None) -> tf.Tensor:
        """Logits of several input tuples at once, with the x-part run once per distinct image batch.

        Args:
            images: per image input k, the distinct image batches ``images[k][j]``.
            picks: per image input k, one ``(j, index)`` per tuple: the tuple's images are the rows ``index`` of
                ``images[k][j]`` (``index`` None: all rows in order). Tuples are concatenated along the batch.
            extra: the non-image inputs, already concatenated over the tuples.

        Equals ``model([x_1, ..., x_K, *extra])`` with ``x_k`` the concatenation over tuples of the picked images,
        including the spectral-norm update (one power iteration per layer when ``training``).
        """
        raise NotImplementedError


def pick_rows(features: Sequence[tf.Tensor], picks: Sequence[tuple[int, tf.Tensor | None]]) -> tf.Tensor:
    """The features of each tuple (``picks`` as in :meth:`SplitCritic.logits`), concatenated along the batch."""
    chosen = [features[j] if index is None else tf.gather(features[j], index) for j, index in picks]
    return chosen[0] if len(chosen) == 1 else tf.concat(chosen, axis=0)


class MergeSplitCritic(SplitCritic):
    """A functional discriminator split where its per-image branches merge (a ``Concatenate`` or ``Dot`` layer).

    The x-part of image input k is the sub-model from that input to the merge layer's k-th input; the head is the
    sub-model from those features and the non-image inputs to the output. Each distinct image batch goes through its
    x-part on its own, so a batch that does not depend on trained variables (a real image batch in the generator
    step) costs no backward pass through the x-part.
    """

    def __init__(self, model: keras.Model, merge_layer: str):
        merged = model.get_layer(merge_layer).input
        merged = list(merged) if isinstance(merged, (list, tuple)) else [merged]
        num_images = sum(1 for t in model.inputs if len(t.shape) == 4)
        super().__init__(model, num_images)
        features, extra_inputs = merged[:num_images], list(model.inputs[num_images:])
        self._x_parts = [keras.Model(model.inputs[k], features[k], name=f"{model.name}_xpart{k}")
                         for k in range(num_images)]
        self._head = keras.Model(features + extra_inputs, model.outputs[0], name=f"{model.name}_head")

    def logits(self, images, picks, extra, training=None):
        features = []
        for k, batches in enumerate(images):
            # One power iteration per layer: on the first batch; the others use the vectors just stored.
            parts = [self._x_parts[k](x, training=training if j == 0 else False) for j, x in enumerate(batches)]
            features.append(pick_rows(parts, picks[k]))
        return self._head(features + list(extra), training=training)
