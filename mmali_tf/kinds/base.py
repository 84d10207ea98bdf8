"""What a modality kind provides: the contract of every entry of :data:`mmali_tf.kinds.KINDS`.

A kind is a network family and everything that depends on it: the shape and storage of one example, the encoder,
decoder and (x, z) discriminator with the :class:`~mmali_tf.networks.critic.Critic` through which the objective calls
it, the branch through which the modality enters a joint critic, how coherence is measured (a classifier for image
kinds, none for feature kinds), and how examples are drawn in the sample grids.

Every method takes the :class:`~mmali_tf.config.ModalitySpec` of the modality, so a kind whose size is not fixed
(``vector``) reads it there; fixed kinds ignore it. Each kind module imports its network modules
(:mod:`mmali_tf.networks`), so importing the registry loads Keras and TensorFlow; the config
(:mod:`mmali_tf.config`) never imports the kinds.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmali_tf.config import ModalitySpec
from mmali_tf.constants import PIXELS
from mmali_tf.errors import ConfigError
from mmali_tf.tiles import tile


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One example of a modality, without the batch axis.

    Attributes:
        shape: ``(H, W, C)`` for images, ``(D,)`` for feature vectors.
        examples: :data:`mmali_tf.constants.PIXELS` or :data:`mmali_tf.constants.FEATURES` (how the data is stored
            and scaled).
    """

    shape: tuple[int, ...]
    examples: str

    @property
    def dtype(self) -> str:
        """The numpy dtype a dataset stores these examples in."""
        return "uint8" if self.examples == PIXELS else "float32"


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
    """The coherence classifier of an image kind (docs/authors_code.md, section 2.1).

    Attributes:
        build: ``build(protocol, seed) -> keras.Model``, images in [0, 1] -> 10 logits; for a ``sized`` classifier
            ``build(protocol, seed, input_shape, num_classes)``.
        default_epochs: training epochs when not overridden (``classifiers.TrainSettings``).
        always_on_dropout_in_reference: the reference protocol keeps a dropout active at inference (MNIST's bug).
        sized: the architecture follows the data: its image shape and its number of classes (max label + 1) are
            read from the train split and recorded with the weights (the ``image`` kind); otherwise the kind's fixed
            image shape and 10 digit classes.
    """

    build: Callable[..., Any]
    default_epochs: int
    always_on_dropout_in_reference: bool = False
    sized: bool = False


class ModalityKind:
    """Base class of the kinds; subclasses set the attributes and implement the network methods.

    Attributes:
        name: the registry key (the ``kind`` of a ``ModalitySpec``).
        description: one line for help texts.
        examples: :data:`mmali_tf.constants.PIXELS` or ``FEATURES``; a modality's dataset must hold the same.
        options: the optional ``ModalitySpec`` fields this kind reads (``feature_dim``, widths); settable with
            ``--modality_option``.
    """

    name: str = ""
    description: str = ""
    examples: str = PIXELS
    options: tuple[str, ...] = ()

    # ------------------------------------------------------------------ the spec
    def input_spec(self, spec) -> InputSpec:
        """Shape and storage of one example of the modality ``spec``."""
        raise NotImplementedError

    def check(self, spec) -> None:
        """``ConfigError`` unless ``spec`` is a valid modality of this kind (called by config validation).

        The default accepts only the common fields: every option the kind does not read must keep its default.
        """
        defaults = ModalitySpec(name="", kind="", dataset="")
        for key in option_fields():
            if key not in self.options and getattr(spec, key) != getattr(defaults, key):
                raise ConfigError(f"modality {spec.name!r}: kind {self.name!r} takes no {key} (it has fixed "
                                  f"networks), got {getattr(spec, key)!r}")

    def option_hint(self, spec, found_shape: tuple[int, ...], source: str) -> str:
        """A hint appended to the error when a dataset's examples (one of shape ``found_shape``, read from
        ``source``) do not fit the modality's networks, e.g. the ``--modality_option`` that would fit; "" for none."""
        return ""

    # ------------------------------------------------------------------ networks (Keras functional models)
    def encoder(self, spec, latent_dim: int, name: str):
        """x ``[B, *input_shape]`` -> ``[B, 2 latent_dim]`` = [mean | logvar], each [style | content]."""
        raise NotImplementedError

    def decoder(self, spec, latent_dim: int, name: str):
        """z ``[B, latent_dim]`` -> ``[B, *input_shape]``."""
        raise NotImplementedError

    def xz_discriminator(self, spec, latent_dim: int, out_dim: int, name: str):
        """``[x, z]`` -> ``[B, out_dim]`` logits, spectrally normalised, inputs ``f"{name}_x"`` / ``f"{name}_z"``."""
        raise NotImplementedError

    def xz_critic(self, model):
        """The :class:`~mmali_tf.networks.critic.Critic` of an :meth:`xz_discriminator` model."""
        raise NotImplementedError

    def x_branch(self, spec):
        """The :class:`~mmali_tf.networks.joint.XBranch` through which the modality enters joint critics."""
        raise NotImplementedError

    # ------------------------------------------------------------------ evaluation and monitoring
    def classifier(self) -> ClassifierSpec | None:
        """The coherence classifier (images), or None (no classifier: coherence does not apply)."""
        return None

    def render(self, rows: Sequence[np.ndarray], labels=None, title=None) -> np.ndarray:
        """Rows of examples (float32 ``[N, *input_shape]``, as the networks see them) as one uint8 RGB grid, with
        ``labels`` (one per row) and ``title`` written on it (:func:`mmali_tf.tiles.tile`)."""
        raise NotImplementedError

    def cca_view(self, spec, examples: np.ndarray) -> np.ndarray:
        """The float32 ``[N, D]`` vectors the CCA correlation metric fits and scores for examples of this modality
        (float32 ``[N, *input_shape]``, as the networks see them). The default flattens them."""
        examples = np.asarray(examples, np.float32)
        return examples.reshape(len(examples), -1)

    def __repr__(self) -> str:
        return f"<modality kind {self.name}>"


COMMON_FIELDS = ("name", "kind", "dataset", "quarter_turns", "rec_weight")
"""The ``ModalitySpec`` fields every kind reads; the other fields are kind options."""


def option_fields() -> tuple[str, ...]:
    """The ``ModalitySpec`` fields that are kind options (``feature_dim``, the widths, the image size, ...)."""
    return tuple(f.name for f in dataclasses.fields(ModalitySpec) if f.name not in COMMON_FIELDS)


def check_widths(value, what: str) -> tuple[int, ...]:
    """``value`` as a tuple of positive ints, else ``ConfigError`` naming ``what``."""
    widths = tuple(value)
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ConfigError(f"{what} must be positive integers, got {value!r}")
    return widths


class ImageKind(ModalityKind):
    """A kind of uint8 images with fixed networks: quarter turns allowed, sample grids drawn as the images.

    The networks come from one module of :mod:`mmali_tf.networks` (``networks``, the module itself) that
    defines ``IMAGE_SHAPE``, ``<prefix>Encoder``, ``<prefix>Decoder``, ``<prefix>XZDiscriminator``, ``xz_critic``
    and ``X_BRANCH``, as ``networks/mnist.py`` and ``networks/svhn.py`` do.
    """

    examples = PIXELS
    networks: types.ModuleType  # e.g. mmali_tf.networks.mnist
    prefix: str = ""  # e.g. "MNIST"

    def input_spec(self, spec=None) -> InputSpec:
        return InputSpec(tuple(self.networks.IMAGE_SHAPE), self.examples)

    def encoder(self, spec, latent_dim, name):
        return getattr(self.networks, f"{self.prefix}Encoder")(latent_dim, name=name)

    def decoder(self, spec, latent_dim, name):
        return getattr(self.networks, f"{self.prefix}Decoder")(latent_dim, name=name)

    def xz_discriminator(self, spec, latent_dim, out_dim, name):
        return getattr(self.networks, f"{self.prefix}XZDiscriminator")(latent_dim, out_dim, name=name)

    def xz_critic(self, model):
        return self.networks.xz_critic(model)

    def x_branch(self, spec=None):
        return self.networks.X_BRANCH

    def render(self, rows: Sequence[np.ndarray], labels=None, title=None) -> np.ndarray:
        return tile([np.asarray(r) for r in rows], labels=labels, title=title)
