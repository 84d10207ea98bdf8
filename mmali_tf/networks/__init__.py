"""Neural networks of mmali_tf (docs/authors_code.md, section 2): encoders, decoders and spectrally normalised discriminators.

Use the ``build_*`` functions of :mod:`mmali_tf.networks.registry` (re-exported here), which take a modality kind
string (``"mnist"``, ``"svhn"``, ``"cub_caption"``, ``"cub_image"``) or a ``ModalitySpec`` (needed by the kinds
sized by their options, ``vector`` and ``image``) and build through the kind's module in :mod:`mmali_tf.kinds`. All networks are Keras functional models with fixed input shapes; all kernels
are N(0, 0.02) and all biases zero; discriminators use :class:`SNDense` / :class:`SNConv2D`, a port of
``torch.nn.utils.spectral_norm`` (one power iteration per ``training=True`` call, gradient through sigma).
``xz_critic`` / ``joint_critic`` give the :class:`Critic` through which the objective scores named tuples with a
discriminator (same variables; all tuples of a player step in one batched forward).
"""

from mmali_tf.networks.joint import (
    ConcatJointDiscriminator,
    DotJointDiscriminator,
    JointXZDiscriminator,
    XBranch,
)
from mmali_tf.networks.mnist import MNISTDecoder, MNISTEncoder, MNISTXZDiscriminator
from mmali_tf.networks.registry import (
    IMAGE_SHAPES,
    JOINT_ARCHITECTURES,
    KIND_NAMES as KINDS,
    build_decoder,
    build_encoder,
    build_joint_discriminator,
    build_joint_xz_discriminator,
    build_xz_discriminator,
    joint_critic,
    xz_critic,
    x_branch,
)
from mmali_tf.networks.spectral_norm import LEAKY_RELU_SLOPE, SNConv2D, SNDense, UnitNormal
from mmali_tf.networks.critic import Critic, merge_critic
from mmali_tf.networks.svhn import SVHNDecoder, SVHNEncoder, SVHNXZDiscriminator

__all__ = [
    "IMAGE_SHAPES",
    "JOINT_ARCHITECTURES",
    "KINDS",
    "LEAKY_RELU_SLOPE",
    "ConcatJointDiscriminator",
    "DotJointDiscriminator",
    "JointXZDiscriminator",
    "MNISTDecoder",
    "MNISTEncoder",
    "MNISTXZDiscriminator",
    "SNConv2D",
    "SNDense",
    "Critic",
    "SVHNDecoder",
    "SVHNEncoder",
    "SVHNXZDiscriminator",
    "UnitNormal",
    "XBranch",
    "build_decoder",
    "build_encoder",
    "build_joint_discriminator",
    "build_joint_xz_discriminator",
    "build_xz_discriminator",
    "joint_critic",
    "merge_critic",
    "xz_critic",
    "x_branch",
]
