"""The ``cub_caption`` kind: CUB's 1,024-d char-CNN-RNN caption embeddings with the authors' networks
(``models/cub_caption.py``: ``EncoderFT``, ``DecoderFT``, ``XZDiscriminatorFT``; docs/authors_code.md, section 2.2)."""

from mmali_tf.kinds.features import FeatureKind


class CUBCaptionKind(FeatureKind):
    name = "cub_caption"
    description = "1024-d CUB caption features, the authors' caption MLPs"
    fixed_widths = "CAPTION_WIDTHS"


KIND = CUBCaptionKind()
