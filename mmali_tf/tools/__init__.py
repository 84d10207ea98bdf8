"""Command-line tools beside training, each run as ``python -m mmali_tf.tools.<name>`` (``--help`` for its flags).

- ``run_table1``: trains and evaluates the MultiMNIST presets of the paper's Table 1.
- ``learning_curves``: trains (or resumes) presets and evaluates their kept checkpoints; draws the learning curves.
- ``train_classifiers``: trains (or verifies) the coherence classifiers of a classifier directory.
- ``make_svhn_standin``: writes the synthetic SVHN stand-in.
- ``make_cub_standin``: writes the synthetic CUB feature stand-in.
- ``prepare_cub``: builds the CUB feature files from the CUB-200-2011 images and StackGAN's embeddings.
- ``cub_to_vectors``: re-saves CUB features (or the stand-in) as files of the generic ``vector`` dataset.
- ``digits_to_images``: writes the embedded digits as image files (40x40 RGB and 24x24 grey), an example input.
- ``pack_images``: packs folders of image files (one per modality) into the ``image`` dataset's files.

Developer tooling (benchmarks, profiling, the mutation check, the equal-budget check) is not part of the package:
it lives in the repository's top-level ``tools/``.

All of them use absl flags through :func:`mmali_tf.cli.run_main`: every bad argument is one ``error:`` line and exit
status 2 before any work starts, every failure one ``error:`` line and exit status 1 (``MMALI_VERBOSE=1`` shows the
traceback). Importing this package imports nothing.
"""
