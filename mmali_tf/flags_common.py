"""Helpers shared by the command-line entry points: quiet TF start-up, one-line errors, absl parsing."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the C++ start-up banner (oneDNN notice, absl pre-init warning) silenced.

    Those lines are printed before TF's logging honours TF_CPP_MIN_LOG_LEVEL, so they would bury the one-line
    errors our entry points promise. Only file descriptor 2 during the import is affected.
    """
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

from absl import app, flags  # noqa: E402

from mmali_tf.errors import MMALIError  # noqa: E402


def parse_flags_one_line(argv):
    """absl parsing, but a bad flag ends with one ``error:`` line and exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def run_main(main) -> None:
    """``app.run`` with user-facing errors (bad data, bad config, divergence) as one line and exit status 1."""

    def guarded(argv):
        if len(argv) > 1:
            print(f"error: unexpected positional arguments {argv[1:]}", file=sys.stderr)
            sys.exit(2)
        try:
            main(argv)
        except MMALIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print("interrupted; resume by running the same command again", file=sys.stderr)
            sys.exit(130)

    app.run(guarded, flags_parser=parse_flags_one_line)
