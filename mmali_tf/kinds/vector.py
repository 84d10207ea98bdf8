"""The ``vector`` kind: any D-dimensional float feature vectors (embeddings of text, audio, tabular data, ...),
with the authors' CUB MLP family sized for D.

The modality spec gives ``feature_dim`` (required) and optionally the widths (``--modality_option=NAME:KEY=VALUE``
on the command line): ``encoder_hidden`` (the decoder uses it reversed), ``x_hidden`` (the discriminators'
x-branch, also the joint critic's branch), ``z_hidden`` and ``head_hidden`` of the (x, z) discriminator. A width
left empty follows the reference's rule for D (:meth:`~mmali_tf.networks.features.FeatureWidths.from_feature_dim`,
rounded down when D is not a multiple of 8): encoder D/2, D/4, D/8; x-branch D/2, D/4, D/8, D/8; z-branch D/8, D/8;
head 512. For D = 1,024 and 2,048 these are CUB's caption and image networks.
"""

from __future__ import annotations

import dataclasses

from mmali_tf.errors import ConfigError
from mmali_tf.kinds.base import check_widths
from mmali_tf.kinds.features import FeatureKind
from mmali_tf.networks.features import FeatureWidths

WIDTH_OPTIONS = ("encoder_hidden", "x_hidden", "z_hidden", "head_hidden")


class VectorKind(FeatureKind):
    name = "vector"
    description = "D-dim float feature vectors, MLPs sized by feature_dim and the width options"
    options = ("feature_dim",) + WIDTH_OPTIONS

    def widths(self, spec):
        dim = getattr(spec, "feature_dim", 0)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            name = getattr(spec, "name", "?")
            raise ConfigError(f"modality {name!r}: kind 'vector' needs the feature size, e.g. "
                              f"--modality_option={name}:feature_dim=D (got {dim!r})")
        widths = FeatureWidths.from_feature_dim(dim, round_down=True)
        given = {key: check_widths(getattr(spec, key), f"modality {spec.name!r}: {key}") for key in WIDTH_OPTIONS}
        return dataclasses.replace(widths, **{key: value for key, value in given.items() if value})

    def option_hint(self, spec, found_shape, source):
        return f"set --modality_option={spec.name}:feature_dim={found_shape[0]}" if len(found_shape) == 1 else ""


KIND = VectorKind()
