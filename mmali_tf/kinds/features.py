"""Feature-vector kinds: a modality whose examples are float32 vectors ``[D]`` modelled with the authors' CUB MLPs
(``networks/features.py``, docs/authors_code.md, section 2.2), for any widths.

:class:`FeatureKind` is the common part; a concrete kind says where its widths come from (:meth:`widths`): fixed
(``cub_caption``, ``cub_image``) or read from the modality spec (``vector``). Features are used as they are (no
scaling), decoders are linear, there is no coherence classifier (feature modalities are scored by CCA correlation,
:mod:`mmali_tf.evaluation.correlation`), and quarter turns are refused.

Sample grids (:meth:`FeatureKind.render`): each vector is drawn as a small grey-level picture, its D values laid out
row by row on a near-square ``ceil(sqrt(D))``-wide raster (a 1,024-d caption feature is 32x32, a 2,048-d image
feature 46 wide), unused cells mid-grey. All rows of a grid share one scale, the 1st to 99th percentile of the
first row (the real examples) mapped to black..white, so reconstructions and translations can be compared with the
inputs cell by cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mmali_tf.constants import FEATURES
from mmali_tf.errors import ConfigError
from mmali_tf.kinds.base import InputSpec, ModalityKind
from mmali_tf.networks import features as feature_networks
from mmali_tf.networks.critic import merge_critic
from mmali_tf.tiles import tile


class FeatureKind(ModalityKind):
    """A feature-vector kind with fixed widths (``fixed_widths`` names a ``FeatureWidths`` of
    ``networks/features.py``, e.g. ``"CAPTION_WIDTHS"``), or one that overrides :meth:`widths`."""

    examples = FEATURES
    fixed_widths: str = ""

    def widths(self, spec):
        """The :class:`~mmali_tf.networks.features.FeatureWidths` of the modality ``spec``."""
        return getattr(feature_networks, self.fixed_widths)

    def input_spec(self, spec=None) -> InputSpec:
        return InputSpec((self.widths(spec).feature_dim,), self.examples)

    def check(self, spec) -> None:
        super().check(spec)
        if spec.quarter_turns % 4:
            raise ConfigError(f"modality {spec.name!r}: quarter_turns rotate images; kind {self.name!r} models "
                              f"feature vectors (got {spec.quarter_turns})")
        self.widths(spec)

    def encoder(self, spec, latent_dim, name):
        return self.widths(spec).encoder(latent_dim, name)

    def decoder(self, spec, latent_dim, name):
        return self.widths(spec).decoder(latent_dim, name)

    def xz_discriminator(self, spec, latent_dim, out_dim, name):
        return self.widths(spec).xz_discriminator(latent_dim, out_dim, name)

    def xz_critic(self, model):
        return merge_critic(model, f"{model.name}_concat")

    def x_branch(self, spec=None):
        widths = self.widths(spec)
        return feature_networks.feature_branch(widths.feature_dim, widths.x_hidden, kind=self.name)

    def render(self, rows: Sequence[np.ndarray], labels=None, title=None) -> np.ndarray:
        return render_features(rows, labels, title)


def feature_raster(dim: int) -> tuple[int, int]:
    """(height, width) of the raster a ``dim``-vector is drawn on: width ``ceil(sqrt(dim))``."""
    width = math.isqrt(dim - 1) + 1 if dim > 1 else 1
    return -(-dim // width), width


def render_features(rows: Sequence[np.ndarray], labels=None, title=None) -> np.ndarray:
    """Rows of feature vectors (each ``[N, D]``) as one uint8 RGB grid (see the module docstring)."""
    rows = [np.asarray(r, np.float32).reshape(len(r), -1) for r in rows]
    dim = rows[0].shape[1]
    lo, hi = (float(v) for v in np.percentile(rows[0], [1.0, 99.0]))
    if not hi > lo:
        hi = lo + 1.0
    height, width = feature_raster(dim)
    pictures = []
    for row in rows:
        canvas = np.full((row.shape[0], height * width), 0.5, np.float32)
        canvas[:, :dim] = np.clip((row - lo) / (hi - lo), 0.0, 1.0)
        pictures.append(canvas.reshape(row.shape[0], height, width, 1))
    return tile(pictures, labels=labels, title=title)
