"""Command-line tools beside training, each run as ``python -m mmali_tf.tools.<name>`` (``--help`` for its flags).

- ``benchmark_train``: training speed of our code (it/s, FLOP count, tf.data rate), optionally against a git ref.
- ``benchmark_vs_authors``: our training iteration against the authors' PyTorch one, timed in lock-step.
- ``profile_train``: a TensorFlow profiler trace of a few training steps, summarised by op type.
- ``run_table1``: trains and evaluates the MultiMNIST presets of the paper's Table 1.
- ``train_classifiers``: trains (or verifies) the coherence classifiers of a classifier directory.
- ``make_svhn_standin``: writes the synthetic SVHN stand-in.
- ``make_cub_standin``: writes the synthetic CUB feature stand-in.
- ``prepare_cub``: builds the CUB feature files from the CUB-200-2011 images and StackGAN's embeddings.
- ``cub_to_vectors``: re-saves CUB features (or the stand-in) as files of the generic ``vector`` dataset.
- ``mutation_check``: applies wiring mistakes to the objective and checks that a test catches each.

All of them use absl flags through :func:`mmali_tf.cli.run_main`: every bad argument is one ``error:`` line and exit
status 2 before any work starts, every failure one ``error:`` line and exit status 1 (``MMALI_VERBOSE=1`` shows the
traceback). Importing this package imports nothing.
"""
