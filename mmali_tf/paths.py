"""Checks of the directories a command will write into, made before it writes anything (TensorFlow-free, so the
tools' flag validators can use them)."""

from __future__ import annotations

import os


def output_dir_problem(path: str) -> str | None:
    """Why ``path`` cannot be an output directory, or None: it must be a writable directory, or not exist yet with
    its nearest existing ancestor a writable directory (so that it can be created). Nothing is created."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(path):
        if not os.path.isdir(path):
            return f"{path} exists and is not a directory"
        why = unwritable(path)
        return f"{path} is not writable ({why})" if why else None
    ancestor = os.path.dirname(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        return f"cannot create {path}: {ancestor} is not a directory"
    why = unwritable(ancestor)
    return f"cannot create {path}: {ancestor} is not writable ({why})" if why else None


def unwritable(directory: str) -> str | None:
    """Why files cannot be created in the existing ``directory`` ("read-only file system", "permission denied"),
    or None if they can."""
    if os.access(directory, os.W_OK | os.X_OK):
        return None
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return "permission denied"
