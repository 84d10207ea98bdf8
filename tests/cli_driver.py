"""Runs many command lines of the entry points in one interpreter, each as ``python -m <module> <argv>`` would run
it (its flags, :func:`mmali_tf.cli.run_main`), for one TensorFlow import in all:

    python -m tests.cli_driver PLAN.json RESULTS.json

PLAN is a JSON list of cases ``{"module", "argv", "env": {...} (optional), "inject": name (optional)}``; RESULTS
receives one ``{"code", "stdout", "stderr", "seconds"}`` per case, in order. Output is captured at the file
descriptors, so TensorFlow's own C++ log lines are in it too. When the module changes between cases, the flags that
mmali_tf defined are removed before the next module defines its own (the entry points share flag names).

``inject`` names a fault for machines where the test cannot mount a tiny file system: ``enospc_checkpoint`` makes
the second checkpoint save of the case fail with ENOSPC after TensorFlow wrote part of it, ``enospc_export`` the
SavedModel write after part of it is written.

From a test, :func:`run_in_one_interpreter` writes the plan, runs the driver in a fresh interpreter and returns the
results.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from unittest import mock


def main(plan_path: str, results_path: str) -> None:
    from absl import flags

    from mmali_tf import cli

    with open(plan_path) as f:
        plan = json.load(f)
    results, module = [], None
    for case in plan:
        if case["module"] != module:
            for name in [n for n in flags.FLAGS if _ours(flags.FLAGS.find_module_defining_flag(n))]:
                delattr(flags.FLAGS, name)
            sys.modules.pop(case["module"], None)
            module = case["module"]
            entry = importlib.import_module(module)  # mmali_tf.train defines its flags on import
            if hasattr(entry, "define_flags"):
                entry.define_flags()
        started = time.perf_counter()
        with _environment(case.get("env", {})), _fault(case.get("inject")):
            code, stdout, stderr = _captured(lambda: _exit_code(cli.run_main, entry.main, [module, *case["argv"]]))
        flags.FLAGS.unparse_flags()
        results.append({"code": code, "stdout": stdout, "stderr": stderr, "seconds": time.perf_counter() - started})
    with open(results_path, "w") as f:
        json.dump(results, f)


def run_in_one_interpreter(cases: list[dict], scratch: str, timeout: float = 600) -> list[dict]:
    """Runs ``cases`` (entries of PLAN) with ``python -m tests.cli_driver`` from the repository root, in a fresh
    interpreter; returns their results, in order. The plan and results files go to the directory ``scratch``."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    plan_path, results_path = os.path.join(scratch, "cli_plan.json"), os.path.join(scratch, "cli_results.json")
    with open(plan_path, "w") as f:
        json.dump(cases, f)
    proc = subprocess.run([sys.executable, "-m", "tests.cli_driver", plan_path, results_path], cwd=repo,
                          env={**os.environ, "PYTHONPATH": repo}, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"tests.cli_driver failed with status {proc.returncode}:\n{proc.stderr[-3000:]}")
    with open(results_path) as f:
        return json.load(f)


def _ours(defining_module: str | None) -> bool:
    return bool(defining_module) and defining_module.split(".")[0] in ("mmali_tf", "tools", "__main__")


def _exit_code(run_main, entry_main, argv) -> int:
    sys.argv = list(argv)
    try:
        run_main(entry_main, argv=argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _captured(fn) -> tuple[int, str, str]:
    """``fn()`` with file descriptors 1 and 2 sent to temporary files; returns (its result, stdout, stderr)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            result = fn()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode(errors="replace"))
    return result, texts[0], texts[1]


@contextlib.contextmanager
def _environment(changes: dict):
    """``os.environ`` with ``changes`` applied (a value of None removes the variable), restored afterwards."""
    saved = {k: os.environ.get(k) for k in changes}
    for key, value in changes.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _disk_full(path: str) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


@contextlib.contextmanager
def _fault(name: str | None):
    if name is None:
        yield
    elif name == "enospc_checkpoint":
        import tensorflow as tf

        original, calls = tf.train.CheckpointManager.save, []

        def save(self, checkpoint_number=None, **kwargs):
            calls.append(checkpoint_number)
            if len(calls) < 2:
                return original(self, checkpoint_number=checkpoint_number, **kwargs)
            temp = os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp")
            os.makedirs(temp, exist_ok=True)
            with open(os.path.join(temp, "part-00000-of-00001.data-00000-of-00001"), "wb") as f:
                f.write(b"\0" * 1024)  # what a save cut short by a full disk leaves
            raise _disk_full(os.path.join(temp, "part-00000-of-00001.data-00000-of-00001"))

        with mock.patch.object(tf.train.CheckpointManager, "save", save):
            yield
    elif name == "enospc_export":
        import keras

        def write_out(self, filepath, **kwargs):
            with open(os.path.join(filepath, "saved_model.pb"), "wb") as f:
                f.write(b"\0" * 1024)
            raise _disk_full(os.path.join(filepath, "variables"))

        archive = type(keras.export.ExportArchive())  # the backend's class, which ExportArchive() returns
        with mock.patch.object(archive, "write_out", write_out):
            yield
    else:
        raise ValueError(f"unknown fault {name!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
