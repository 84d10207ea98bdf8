"""The git checkout the tools work on (``mutation_check`` copies it, ``benchmark_train --baseline`` reads older
commits from it, the benchmarks print its commit), located without ``sys.path`` tricks.

Loads only the standard library.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import mmali_tf
from mmali_tf.errors import MMALIError

PACKAGE_PARENT = Path(mmali_tf.__file__).resolve().parents[1]
"""The directory holding the ``mmali_tf`` package: the repository root in a source checkout."""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True)
    except OSError as exc:  # no git on this machine
        return subprocess.CompletedProcess(args, 127, b"", str(exc).encode())


def _toplevel(directory: Path) -> Path | None:
    proc = _git(directory, "rev-parse", "--show-toplevel")
    return Path(proc.stdout.decode().strip()).resolve() if proc.returncode == 0 else None


def repository_root() -> Path | None:
    """The git work tree whose ``mmali_tf`` package is this one (a source checkout, ``pip install -e``), else the
    git top level of the current directory if it holds an ``mmali_tf`` package, else None."""
    if _toplevel(PACKAGE_PARENT) == PACKAGE_PARENT:
        return PACKAGE_PARENT
    here = _toplevel(Path.cwd())
    if here is not None and (here / "mmali_tf" / "__init__.py").is_file():
        return here
    return None


def require_repository(what: str) -> Path:
    """:func:`repository_root`, or :class:`MMALIError` saying that ``what`` needs a checkout."""
    root = repository_root()
    if root is None:
        raise MMALIError(f"{what} needs the git checkout of mmali_tf: run it from a clone of the repository "
                         f"(this package is at {PACKAGE_PARENT / 'mmali_tf'}, which is not in one)")
    return root


def commit_of(root: Path, ref: str) -> str | None:
    """The short hash of the commit ``ref`` names in ``root``, or None if it names none."""
    proc = _git(root, "rev-parse", "--verify", "--quiet", "--short", f"{ref}^{{commit}}")
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def describe_head(root: Path | None) -> str:
    """HEAD's short hash, with "(+uncommitted changes in mmali_tf/)" if the package differs from it; "unknown"
    outside a checkout."""
    head = commit_of(root, "HEAD") if root is not None else None
    if head is None:
        return "unknown (not a git checkout)"
    dirty = _git(root, "status", "--porcelain", "--", "mmali_tf").stdout.strip()
    return head + (" (+uncommitted changes in mmali_tf/)" if dirty else "")


def tracked_files(root: Path) -> list[str]:
    """The paths git tracks in ``root``, relative to it."""
    proc = _git(root, "ls-files", "-z")
    if proc.returncode:
        raise MMALIError(f"git ls-files in {root} failed: {proc.stderr.decode().strip()}")
    return [name for name in proc.stdout.decode().split("\0") if name]


def extract(root: Path, ref: str, paths: list[str], target: Path) -> None:
    """Write the files under ``paths`` as commit ``ref`` of ``root`` has them into ``target`` (``git archive``)."""
    proc = _git(root, "archive", "--format=tar", ref, *paths)
    if proc.returncode:
        raise MMALIError(f"git archive {ref} failed: {proc.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(target, filter="data")
