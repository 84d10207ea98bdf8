"""A name -> entry table, one per concept: modality kinds (:mod:`mmali_tf.kinds`), datasets
(:mod:`mmali_tf.data.datasets`), evaluation metrics (:mod:`mmali_tf.evaluation.metrics`) and joint critic
architectures (:mod:`mmali_tf.networks.registry`).

Every entry has a ``name`` and a one-line ``description``. Whatever lists the choices of a concept (flag help texts,
config validation, error messages, evaluation) reads its registry, so an entry registered once is known everywhere.
Registering a name twice is an error unless ``replace=True`` (tests use that to register and remove dummies).

Pure Python: nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from mmali_tf.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one concept, in registration order.

    Args:
        concept: what an entry is, for messages ("modality kind", "dataset", ...).
    """

    def __init__(self, concept: str):
        self.concept = concept
        self._entries: dict[str, T] = {}

    def register(self, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``entry.name``; returns it. A name already taken raises ``ConfigError``."""
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.concept} needs a non-empty string name, got {name!r}")
        if name in self._entries and not replace:
            raise ConfigError(f"{self.concept} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error if absent)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry called ``name``; otherwise a ``ConfigError`` listing the registered names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.concept} {name!r}; expected one of {', '.join(self._entries)}.") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[T, ...]:
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def live_names(self) -> Sequence[str]:
        """The registered names as a tuple-like view that always shows the current entries."""
        return _LiveNames(self)

    def help_text(self) -> str:
        """``"name (description); name (description)"`` for flag help texts."""
        return "; ".join(f"{name} ({getattr(entry, 'description', '')})" for name, entry in self._entries.items())


class _LiveNames(Sequence):
    def __init__(self, registry: Registry):
        self._registry = registry

    def __getitem__(self, index):
        return self._registry.names()[index]

    def __len__(self) -> int:
        return len(self._registry)

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __repr__(self) -> str:
        return repr(self._registry.names())


class LiveMapping(Mapping):
    """A read-only mapping computed from a registry on every access (``table()`` builds it), for module-level
    names such as ``IMAGE_SHAPES`` that describe the registered entries without being a second list of them."""

    def __init__(self, table: Callable[[], Mapping]):
        self._table = table

    def __getitem__(self, key):
        return self._table()[key]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return repr(dict(self._table()))
