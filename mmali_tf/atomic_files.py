"""Whole-or-nothing file writes: a run killed mid-write leaves the old file (or none), never half a file.

TensorFlow-free, so tools can use it without importing TensorFlow.
"""

from __future__ import annotations

import json
import os


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    _write_atomic(path, "w", text)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """:func:`write_text_atomic` for binary content."""
    _write_atomic(path, "wb", data)


def _write_atomic(path: str, mode: str, payload) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"  # per process: two writers never share a temporary file
    try:
        with open(tmp, mode) as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, payload) -> None:
    """``payload`` (a JSON string, or anything ``json.dumps`` takes) written with :func:`write_text_atomic`."""
    write_text_atomic(path, payload if isinstance(payload, str) else json.dumps(payload, indent=2, sort_keys=True))
