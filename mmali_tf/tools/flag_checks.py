"""absl flag validators shared by the tools.

A value that fails one of these fails while the flags are parsed, so :func:`mmali_tf.cli.parse_flags_one_line` turns
it into one ``error:`` line (``flag --name=value: why``) and exit status 2, before the tool does any work. Each
``require_*`` registers a validator on ``flags.FLAGS`` for a flag that is already defined; a flag left unset
(``None``) passes, so pair them with ``required=True`` where a value is mandatory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping

from absl import flags

from mmali_tf.errors import MMALIError
from mmali_tf.paths import output_dir_problem


def _register(name: str, problem: Callable[[object], str | None], unset_too: bool = False) -> None:
    """Validate flag ``name`` with ``problem(value)``: a message fails it, None passes; unset values (None) pass
    unless ``unset_too``."""
    def check(value) -> bool:
        message = problem(value) if value is not None or unset_too else None
        if message:
            raise flags.ValidationError(message)
        return True

    flags.register_validator(name, check)


def require(name: str, check: Callable[[object], object], unset_too: bool = False) -> None:
    """``--name`` passes ``check(value)``, which raises :class:`MMALIError` (its message is the error line) for a
    bad value, e.g. a parser of the flag's value; unset values are not checked unless ``unset_too``. The flags are
    parsed when validators run, so ``check`` may read other flags."""
    def problem(value) -> str | None:
        try:
            check(value)
        except MMALIError as exc:
            return str(exc)
        return None

    _register(name, problem, unset_too)


def require_output_dir(name: str) -> None:
    """``--name`` is a writable directory or can be created (:func:`output_dir_problem`)."""
    _register(name, output_dir_problem)


def require_existing_dir(name: str) -> None:
    """``--name`` is an existing directory."""
    _register(name, lambda path: None if os.path.isdir(path) else f"no such directory: {path}")


def require_names(name: str, choices: Collection[str], aliases: Mapping[str, str] | None = None) -> None:
    """Every entry of the list flag ``--name`` is one of ``choices`` (or a key of ``aliases``, an old name of one
    of them), and there is at least one."""
    aliases = aliases or {}

    def problem(values) -> str | None:
        if not values:
            return f"--{name} selects nothing; choose from {', '.join(choices)}"
        unknown = [v for v in values if v not in choices and v not in aliases]
        if unknown:
            return f"unknown {', '.join(map(repr, unknown))}; choose from {', '.join(choices)}"
        return None

    _register(name, problem)


def resolve_aliases(values, aliases: Mapping[str, str]) -> list[str]:
    """``values`` with old names replaced by their new ones (see :func:`require_names`), in order, no repeats."""
    out = []
    for value in values:
        value = aliases.get(value, value)
        if value not in out:
            out.append(value)
    return out
