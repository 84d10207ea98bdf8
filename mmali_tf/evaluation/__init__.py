"""Evaluation of MMALI models: coherence classifiers, latent linear probe, cross/joint/synergy coherence, CCA
correlation of feature modalities, reports.

Modules: :mod:`metrics` (the registry of metric groups and which models they apply to), :mod:`classifiers`
(docs/authors_code.md, section 2.1), :mod:`latent` (4.1), :mod:`coherence` (4.2), :mod:`cca` and
:mod:`correlation` (4.3, CUB), :mod:`report` (metrics.json, Markdown, TensorBoard). The command line is
:mod:`mmali_tf.evaluate`.
"""
