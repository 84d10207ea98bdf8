"""What a dataset provides: the contract of every entry of :data:`mmali_tf.data.datasets.DATASETS`.

A dataset is one loader of one modality's examples per split, plus what the rest of the code needs to know about
them: whether they are images or feature vectors (they must match the modality's kind), how the modalities of a
tuple are paired, and how reports name the data.

Pairing:

* ``"label"``: tuples are built by same-label matching across modalities (:func:`mmali_tf.data.pairing.
  pair_by_label`, the authors' MNIST-SVHN and MultiMNIST pairing); the loader's ``Split.labels`` drive it.
* ``"index"``: the dataset defines its tuples itself, ``Split.tuple_index[t]`` being the example of tuple ``t``
  (CUB: caption ``t`` with image ``t // 10``; vector files: row ``t`` of every modality). All modalities must then
  have the same number of tuples.

The datasets of one experiment must all pair the same way (config validation checks it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

LABEL = "label"
INDEX = "index"
PAIRINGS = (LABEL, INDEX)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One registered dataset.

    Attributes:
        name: the registry key (the ``dataset`` of a ``ModalitySpec``).
        description: one line for help texts.
        load: ``load(data_dir, split, *, modality, tfds_data_dir, download, **_) -> Split``; ``data_dir`` None means
            ``$MMALI_DATA_DIR``; ``modality`` is the modality's name (datasets whose files are named after the
            modality read it); user-facing problems raise ``DataError`` / ``ConfigError`` (one line).
        examples: ``constants.PIXELS`` (uint8 images) or ``constants.FEATURES`` (float32 vectors).
        pairing: ``"label"`` or ``"index"`` (see the module docstring).
        display: the data's name in reports, e.g. "MNIST".
        standin_display: the name in reports when the split's source says "stand-in" (synthetic data).
        standin_note: a note that evaluation reports add when stand-in data was used.
        per_modality: the dataset's files are named after the modality (``vector``, ``image``), so two modalities of
            one dataset hold different data (and, for image kinds, get a coherence classifier each).
        has_labels: for a dataset paired by index, ``has_labels(data_dir, modality) -> bool``: whether both splits
            of the modality carry class labels (a cheap look at the files, without loading them), which makes the
            label-based metrics (linear probe, coherence) apply; None: never (datasets paired by label always
            have labels).
    """

    name: str
    description: str
    load: Callable
    examples: str
    pairing: str
    display: str
    standin_display: str = ""
    standin_note: str = ""
    per_modality: bool = False
    has_labels: Callable | None = None

    def __post_init__(self):
        if self.pairing not in PAIRINGS:
            raise ValueError(f"dataset {self.name!r}: pairing must be one of {PAIRINGS}, got {self.pairing!r}")

    def label(self, source: str) -> str:
        """Human name of data loaded from ``source`` (a ``Split.source``), saying "stand-in" for synthetic data."""
        origin = source.split(" from ", 1)[0]  # the path may contain anything; the origin says what it is
        if "stand-in" in origin:
            return self.standin_display or f"{self.display} stand-in"
        return self.display
