"""The ``cub_image`` kind: CUB's 2,048-d ResNet-101 image features with the authors' networks
(``models/cub_image.py``: ``EncoderFT``, ``DecoderFT``, ``XZDiscriminatorFT``; docs/authors_code.md, section 2.2)."""

from mmali_tf.kinds.features import FeatureKind


class CUBImageKind(FeatureKind):
    name = "cub_image"
    description = "2048-d CUB image features, the authors' image MLPs"
    fixed_widths = "IMAGE_WIDTHS"


KIND = CUBImageKind()
