"""Errors that entry points turn into one clear line and a non-zero exit."""


class MMALIError(Exception):
    """Base class for user-facing errors (bad input, bad config, diverged training)."""


class DataError(MMALIError):
    """A data file or directory is missing, corrupt or has the wrong shape."""


class ConfigError(MMALIError):
    """A configuration value is out of range or inconsistent."""


class TrainingDiverged(MMALIError):
    """A loss became NaN or infinite."""
