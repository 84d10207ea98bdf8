"""Evaluation of MMALI models: coherence classifiers, latent linear probe, cross/joint/synergy coherence, reports.

Modules: :mod:`classifiers` (docs/authors_code.md, section 2.1), :mod:`latent` (4.1), :mod:`coherence` (4.2),
:mod:`report` (metrics.json, Markdown, TensorBoard). The command line is :mod:`mmali_tf.evaluate`.
"""
