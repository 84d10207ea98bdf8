"""Data layer of mmali_tf: the dataset registry and its loaders, same-label pairing, the stand-ins and tf.data
pipelines.

The TensorFlow-dependent names (``paired_batches``, ``unimodal_batches``, ``measure_rate``, ``CALLS``)
are imported on first use, so that importing the numpy-only parts (e.g. in the stand-in's render
worker processes) does not pay TensorFlow's import time.
"""

from mmali_tf.data.datasets import DATASETS, data_label, load_dataset
from mmali_tf.data.embedded import load_digits_modality
from mmali_tf.data.pairing import pair_by_label, pairing_summary
from mmali_tf.data.sources import DATA_DIR_ENV, Split, load_mnist, load_svhn, resolve_data_dir
from mmali_tf.data.svhn_standin import (SVHN_TEST_CLASS_COUNTS, SVHN_TRAIN_CLASS_COUNTS, render_standin,
                                        write_svhn_mat)

_PIPELINE_NAMES = ("CALLS", "paired_batches", "unimodal_batches", "measure_rate")

__all__ = [
    "DATA_DIR_ENV", "DATASETS", "Split", "data_label", "load_mnist", "load_svhn", "load_dataset", "resolve_data_dir",
    "load_digits_modality", "pair_by_label", "pairing_summary",
    "SVHN_TRAIN_CLASS_COUNTS", "SVHN_TEST_CLASS_COUNTS", "render_standin", "write_svhn_mat",
    *_PIPELINE_NAMES,
]


def __getattr__(name):
    if name in _PIPELINE_NAMES:
        from mmali_tf.data import pipeline  # deferred: TensorFlow, not needed by the numpy-only users

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
