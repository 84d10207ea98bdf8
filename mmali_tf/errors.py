"""Errors that entry points turn into one clear line and a non-zero exit."""

import errno
import os
import re


class MMALIError(Exception):
    """Base class for user-facing errors (bad input, bad config, diverged training)."""


class DataError(MMALIError):
    """A data file or directory is missing, corrupt or has the wrong shape."""


class ConfigError(MMALIError):
    """A configuration value is out of range or inconsistent."""


class TrainingDiverged(MMALIError):
    """A loss became NaN or infinite."""


def os_reason(exc: BaseException) -> str:
    """A short reason for an OS-level failure (permissions, a full disk, a path that is a file, ...): the system's
    words and the path for an OSError, the first line of the message otherwise (e.g. TensorFlow's file errors)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        text = os.strerror(exc.errno) + (" (disk full)" if exc.errno == errno.ENOSPC else "")
        return f"{text}: {exc.filename}" if exc.filename else text
    # TensorFlow's op errors: "{{function_node ...}} message [Op:Name] name: ..."
    lines = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\]( name: ?\S*)?", "", str(exc))
    lines = lines.strip().splitlines()
    text = lines[0][:300] if lines else type(exc).__name__
    return text + (" (disk full)" if os.strerror(errno.ENOSPC) in text else "")
