"""The modality-kind registry: every network family a modality can have, one module each.

A kind module defines a :class:`~mmali_tf.kinds.base.ModalityKind` (see :mod:`mmali_tf.kinds.base` for what it
provides) as ``KIND``; this registry holds one line per kind. The registry checks (:mod:`mmali_tf.checks`), the
``--modalities`` help text, the network builders (:mod:`mmali_tf.kinds.builders`), the training data checks, the
sample grids, evaluation (classifiers, correlation) and export all look kinds up here, so a new kind is its module
plus its registration line (BUILD.md, "Adding a modality kind or a dataset").
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Sequence

from mmali_tf.config import ModalitySpec
from mmali_tf.constants import FEATURES, PIXELS
from mmali_tf.errors import ConfigError
from mmali_tf.kinds import cub_caption, cub_image, image, mnist, svhn, vector
from mmali_tf.kinds.base import ClassifierSpec, InputSpec, ModalityKind
from mmali_tf.registry import Registry

KINDS: Registry[ModalityKind] = Registry("modality kind")
KINDS.register(mnist.KIND)
KINDS.register(svhn.KIND)
KINDS.register(cub_caption.KIND)
KINDS.register(cub_image.KIND)
KINDS.register(vector.KIND)
KINDS.register(image.KIND)

__all__ = ["FEATURES", "KINDS", "PIXELS", "ClassifierSpec", "InputSpec", "ModalityKind", "get",
           "kind_of", "input_spec", "apply_modality_options", "modality_option_help"]


def get(name: str) -> ModalityKind:
    """The registered kind ``name`` (``ConfigError`` listing the kinds otherwise)."""
    return KINDS.get(name)


def kind_of(spec) -> ModalityKind:
    """The kind of a ``ModalitySpec``."""
    return KINDS.get(spec.kind)


def input_spec(spec) -> InputSpec:
    """Shape and storage of one example of the modality ``spec``."""
    return kind_of(spec).input_spec(spec)


def _is_int_option(key: str) -> bool:
    return typing.get_type_hints(ModalitySpec)[key] is int


def _parse_value(key: str, text: str, entry: str):
    integer = _is_int_option(key)
    try:
        if integer:
            return int(text)
        return tuple(int(v) for v in text.replace("/", ",").split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--modality_option {entry!r}: {key} takes "
                          f"{'an integer' if integer else 'comma-separated integers'}") from None


def _assignments(text: str) -> list[tuple[str, str]]:
    """``"height=64,width=48"`` -> [("height", "64"), ("width", "48")]; a comma-separated part without ``=``
    continues the previous value (``"encoder_hidden=512,128"`` -> [("encoder_hidden", "512,128")])."""
    out: list[list[str]] = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep or not out:
            out.append([key.strip(), value.strip() if sep else ""])
        else:
            out[-1][1] += "," + part
    return [(key, value) for key, value in out]


def apply_modality_options(specs: Sequence, entries: Iterable[str]) -> tuple:
    """``specs`` (ModalitySpecs) with ``NAME:KEY=VALUE[,KEY=VALUE...]`` entries applied, e.g.
    ``text:feature_dim=768``, ``text:encoder_hidden=384,192,96`` or ``photo:height=64,width=64,channels=3``. Each
    KEY must be an option of the modality's kind."""
    by_name = {spec.name: spec for spec in specs}
    for entry in entries:
        name, _, assignment = entry.partition(":")
        pairs = _assignments(assignment) if assignment else []
        if not name or not pairs or not all(key and value for key, value in pairs):
            raise ConfigError(f"--modality_option {entry!r} must be NAME:KEY=VALUE (or NAME:KEY=VALUE,KEY=VALUE)")
        if name not in by_name:
            raise ConfigError(f"--modality_option {entry!r}: no modality {name!r} (modalities: "
                              f"{', '.join(by_name)})")
        kind = kind_of(by_name[name])
        for key, value in pairs:
            if key not in kind.options:
                allowed = ", ".join(kind.options) if kind.options else "none (its networks are fixed)"
                raise ConfigError(f"--modality_option {entry!r}: kind {kind.name!r} has no option {key!r} "
                                  f"(options: {allowed})")
            by_name[name] = dataclasses.replace(by_name[name], **{key: _parse_value(key, value, entry)})
    return tuple(by_name[spec.name] for spec in specs)


def modality_option_help() -> str:
    """Help text of ``--modality_option``: the kinds that take options and their option names."""
    parts = [f"{kind.name}: {', '.join(kind.options)}" for kind in KINDS.entries() if kind.options]
    return ("Per-modality options, NAME:KEY=VALUE[,KEY=VALUE...] (repeat the flag), e.g. text:feature_dim=768, "
            "text:encoder_hidden=384,192,96 or photo:height=64,width=64,channels=3. Options by kind: "
            + ("; ".join(parts) or "none"))
