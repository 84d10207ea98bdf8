"""The dataset registry: every data source a modality can read, one registration line each.

Entries are :class:`~mmali_tf.data.dataset.Dataset`\\ s defined next to their loaders. Config validation, the
``--modalities`` help text, the training data, evaluation (classifiers, reports, stand-in notes) and the tools look
datasets up here, so a new dataset is its loader module plus its registration line (BUILD.md, "Adding a modality
kind or a dataset").
"""

from __future__ import annotations

from mmali_tf.data import cub_features, embedded, image_files, sources, vectors
from mmali_tf.data.dataset import INDEX, LABEL, Dataset
from mmali_tf.data.sources import Split
from mmali_tf.data.validation import check_split
from mmali_tf.registry import Registry

DATASETS: Registry[Dataset] = Registry("dataset")
DATASETS.register(sources.MNIST)
DATASETS.register(sources.SVHN)
DATASETS.register(embedded.DIGITS_GREY28)
DATASETS.register(embedded.DIGITS_COLOUR32)
DATASETS.register(cub_features.CUB_CAPTION)
DATASETS.register(cub_features.CUB_IMAGE)
DATASETS.register(vectors.VECTOR)
DATASETS.register(image_files.IMAGE)

__all__ = ["DATASETS", "Dataset", "INDEX", "LABEL", "data_label", "load_dataset"]


def load_dataset(name: str, split: str, data_dir: str | None, *, modality: str | None = None,
                 tfds_data_dir: str | None = None, download: bool = False, **kw) -> Split:
    """Split ``split`` of the registered dataset ``name`` (``ConfigError`` listing the datasets if unknown).

    ``modality`` names the modality the data is for (datasets named after it read it, e.g. ``vector``);
    ``tfds_data_dir`` and ``download`` are for the TFDS fallbacks of ``mnist`` and ``svhn``; other keywords (e.g.
    ``seed`` of the embedded digits) go to the loader. Whatever the loader returns passes the checks every format
    shares (:func:`mmali_tf.data.validation.check_split`: rank, N > 0, labels where the pairing needs them).
    """
    dataset = DATASETS.get(name)
    loaded = dataset.load(data_dir, split, modality=modality, tfds_data_dir=tfds_data_dir, download=download, **kw)
    return check_split(loaded, dataset)


def data_label(dataset: str, source: str) -> str:
    """Human name of a modality's data, saying "stand-in" for synthetic replacements (e.g. "SVHN stand-in")."""
    if dataset in DATASETS:
        return DATASETS.get(dataset).label(source)
    return f"{dataset} stand-in" if "stand-in" in source.split(" from ", 1)[0] else dataset
