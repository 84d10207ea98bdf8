"""Evaluation of MMALI models: coherence classifiers, latent linear probe, cross/joint/synergy coherence, reports.

Modules: :mod:`classifiers` (reference section 3.6), :mod:`latent` (7.1), :mod:`coherence` (7.2),
:mod:`report` (metrics.json, Markdown, TensorBoard). The command line is :mod:`mmali_tf.evaluate`.
"""
