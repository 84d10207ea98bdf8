"""Reliability (issue 15): a good run is never lost or overwritten, damaged checkpoints fall back or refuse, every
failure is one ``error:`` line. The guarantees are those of BUILD.md, "Resume and failure behaviour".

What runs, the heavy parts side by side in background threads (each a process of its own):

- REFERENCE: an uninterrupted run of a small model (two MNIST MLP modalities, no reconstruction terms, deterministic);
- the kill -9 loop: the same command killed at seeded random points (start-up, steps, checkpoint writes) and run
  again after each kill until it completes: the final weights equal REFERENCE's bit for bit, and the steps lost
  per kill (step reached when killed minus the step resumed from) never exceed ``--save_every``;
- the signal chain (``--save_every`` larger than the run): SIGTERM, SIGINT and a double SIGTERM during training,
  then completion, bit for bit REFERENCE again;
- one interpreter (tests/cli_driver.py) for many command lines: damaged checkpoints (fallback with one warning, or
  refusal), failing commands on a good run directory (every file hashed before and after), a full disk (a tiny
  tmpfs where the test can mount one, else fault injection), read-only directories, and the bad-input cases of
  train, evaluate, export, launch and every tool;
- a few real processes, so that TensorFlow's own start-up output is covered too (bad input, Ctrl-C and SIGTERM
  during start-up).

The summary (cases, kills, steps lost per kill, bit-exactness, runtime) is printed at the end of the pytest run
(``pytest_terminal_summary`` in tests/conftest.py).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.abspath(os.environ.get("MMALI_DATA_DIR") or os.path.join(REPO, "..", "shared", "data"))
# As a user runs the commands: TensorFlow's own log level left to mmali_tf.cli (tests/conftest.py raises it).
ENV = {k: v for k, v in os.environ.items()
       if k not in ("TF_CONFIG", "MMALI_CLASSIFIER_DIR", "MMALI_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
ENV.update(PYTHONPATH=REPO, MMALI_DATA_DIR=DATA_DIR)
MODEL = ["--config=tiny", "--modalities=a:mnist:mnist,b:mnist:mnist:1", "--joint_architecture=concat",
         "--nojoint_rec", "--lambda_x_rec=0", "--lambda_s_rec=0", "--lambda_c_rec=0", "--deterministic",
         "--log_every=1", "--image_every=1000"]
STEPS, SAVE_EVERY, KEEP = 10, 2, 3  # REFERENCE keeps ckpt-6, ckpt-8, ckpt-10
SEED = 15
KILLS = 4  # the first during start-up, the others at random steps
TIMEOUT = 600

SUMMARY: dict = {}  # filled by the tests, printed by tests/conftest.py


def train_args(workdir, *extra: str) -> list[str]:
    """The flags of the small run in ``workdir``; later flags (``extra``) override earlier ones."""
    return [*MODEL, f"--save_every={SAVE_EVERY}", f"--max_iter={STEPS}", f"--workdir={workdir}", *extra]


def module_cmd(module: str, args) -> list[str]:
    return [sys.executable, "-m", module, *args]


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_fails_with_one_line(code: int, stderr: str, expected_code: int, *fragments: str, alone=False) -> str:
    """Exit status ``expected_code``; exactly one ``error:`` line, the last line of stderr, with every fragment;
    no traceback; with ``alone`` nothing else on stderr at all. Returns the line."""
    lines = stderr_lines(stderr)
    assert code == expected_code, (code, stderr[-3000:])
    assert lines and lines[-1].startswith("error: "), stderr[-3000:]
    assert sum(line.startswith("error:") for line in lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    if alone:
        assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
    return lines[-1]


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr_lines(stderr) if line.startswith("warning:")]


def digest_of(stdout: str) -> str | None:
    found = re.findall(r"^done: step \d+, .*weights ([0-9a-f]{16})$", stdout, re.M)
    return found[-1] if found else None


def resumed_step(stdout: str) -> int:
    found = re.findall(r"^resumed from \S+ckpt-(\d+) at step (\d+)$", stdout, re.M)
    return int(found[-1][1]) if found else 0


def last_step(stdout: str) -> int:
    found = re.findall(r"^step (\d+)/\d+ ", stdout, re.M)
    return int(found[-1]) if found else 0


def hash_tree(root) -> dict[str, str]:
    """sha256 of every file under ``root`` and a marker for every directory, by relative path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames:
            out[os.path.join(rel, name) + "/"] = "dir"
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                out[os.path.join(rel, name)] = hashlib.file_digest(f, "sha256").hexdigest()
    return out


def copy_run(source: str, target: str) -> str:
    """A copy of a run directory; the large checkpoint data files are hard links (never written in place: the
    damage helpers below replace files, TensorFlow writes new ones and renames them)."""
    def link_or_copy(src, dst):
        if ".data-" in os.path.basename(src):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy)
    return target


def damage(path: str, how: str, rng: np.random.Generator) -> None:
    """Delete, truncate (to half), empty or garble (random bytes, same size) the file ``path`` (a new file)."""
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    if how == "deleted":
        return
    replacement = {"truncated": data[: len(data) // 2], "empty": b"", "garbled": rng.bytes(len(data))}[how]
    with open(path, "wb") as f:
        f.write(replacement)


def state_file(workdir) -> tuple[str, list[str]]:
    """The latest checkpoint and all checkpoints the state file lists (file names), each with a timestamp."""
    with open(os.path.join(workdir, "checkpoints", "checkpoint")) as f:
        text = f.read()
    latest = re.search(r'^model_checkpoint_path: "([^"]+)"', text, re.M).group(1)
    listed = [os.path.basename(p) for p in re.findall(r'^all_model_checkpoint_paths: "([^"]+)"', text, re.M)]
    # each with a timestamp, or tf.train.CheckpointManager would never delete it
    assert len(re.findall(r"^all_model_checkpoint_timestamps: \d", text, re.M)) == len(listed), text
    return os.path.basename(latest), listed


def checkpoint_files(workdir) -> list[str]:
    return sorted(os.listdir(os.path.join(workdir, "checkpoints")))


# ---------------------------------------------------------------------------------------------------- processes
class Processes:
    """The processes the suite started, so that a failing test leaves none behind."""

    def __init__(self):
        self._running, self._lock, self._closed = set(), threading.Lock(), False

    def start(self, cmd, **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._closed:
                raise RuntimeError("the suite is over")
            process = subprocess.Popen(cmd, cwd=REPO, env=kwargs.pop("env", ENV), text=True, **kwargs)
            self._running.add(process)
        return process

    def finish(self, process, timeout=TIMEOUT) -> tuple[str, str]:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # close() no longer sees it: it must not outlive the suite
            process.communicate()
            raise
        finally:
            with self._lock:
                self._running.discard(process)
        return stdout or "", stderr or ""

    def close(self) -> None:
        """Kill every process still running and start no more."""
        with self._lock:
            self._closed = True
            for process in self._running:
                if process.poll() is None:
                    process.kill()


def run_until(processes: Processes, cmd, watch=None, env=ENV) -> dict:
    """Run ``cmd`` to its end; ``watch(line, process)`` sees every stdout line as it comes and returns True once
    it has acted (then it sees no more). Returns the exit status, the output and the seconds from the act to the
    exit."""
    process = processes.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    errors = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()))
    reader.start()
    lines, acted_at = [], None
    for line in process.stdout:
        lines.append(line)
        if acted_at is None and watch is not None and watch(line.rstrip("\n"), process):
            acted_at = time.perf_counter()
    processes.finish(process)
    reader.join()
    return {"code": process.returncode, "stdout": "".join(lines), "stderr": "".join(errors),
            "seconds_after_act": None if acted_at is None else time.perf_counter() - acted_at}


def at_step(offset: int, act):
    """A ``watch`` that calls ``act(process)`` once the run is ``offset`` steps past the step it started from."""
    start = {"step": 0}

    def watch(line, process):
        resumed = re.match(r"resumed from \S+ at step (\d+)$", line)
        if resumed:
            start["step"] = int(resumed.group(1))
        step = re.match(r"step (\d+)/", line)
        if step and int(step.group(1)) >= start["step"] + offset:
            act(process)
            return True
        return False

    return watch


# ---------------------------------------------------------------------------------------------------- the runs
def reference_run(processes, root) -> dict:
    workdir = os.path.join(root, "reference")
    result = run_until(processes, module_cmd("mmali_tf.train", train_args(workdir)))
    assert result["code"] == 0, result["stderr"][-3000:]
    return {"workdir": workdir, "digest": digest_of(result["stdout"]), "result": result}


def kill_loop(processes, root) -> dict:
    """kill -9 at seeded random points, running the same command again after each kill, until it completes: the
    first kill at a random moment of the start-up, the others a random delay after a random step (in a step or
    in a checkpoint write)."""
    rng = np.random.default_rng(SEED)
    workdir = os.path.join(root, "killed")
    cmd = module_cmd("mmali_tf.train", train_args(workdir))
    runs, points = [], []
    for index in range(KILLS):
        if index == 0:
            delay = float(rng.uniform(1.0, 8.0))
            process = processes.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            timer = threading.Timer(delay, process.kill)
            timer.start()
            stdout, stderr = processes.finish(process)
            timer.cancel()
            runs.append({"code": process.returncode, "stdout": stdout, "stderr": stderr})
            points.append(f"start-up +{delay:.1f} s")
            continue
        fraction, delay = float(rng.uniform()), float(rng.uniform(0.0, 0.4))
        chosen = {}

        def watch(line, process, fraction=fraction, delay=delay, chosen=chosen):
            resumed = re.match(r"resumed from \S+ at step (\d+)$", line)
            if resumed or line.startswith("parameters:") and "start" not in chosen:
                start = int(resumed.group(1)) if resumed else 0
                chosen.update(start=start, target=start + 1 + int(fraction * (STEPS - 1 - start)))
            step = re.match(r"step (\d+)/", line)
            if step and int(step.group(1)) >= chosen.get("target", STEPS):
                time.sleep(delay)
                process.kill()
                return True
            return False

        runs.append(run_until(processes, cmd, watch))
        points.append(f"after step {chosen.get('target')} +{delay:.2f} s")
        if runs[-1]["code"] == 0:  # resumed too close to the end to be killed
            break
    completed = runs[-1]["code"] == 0
    if not completed:
        runs.append(run_until(processes, cmd))
    kills = []
    for point, killed, following in zip(points, runs, runs[1:]):
        reached = max(last_step(killed["stdout"]), resumed_step(killed["stdout"]))
        resumed = resumed_step(following["stdout"])
        kills.append({"point": point, "code": killed["code"], "reached": reached, "resumed_from": resumed,
                      "lost": reached - resumed, "warnings": warnings_in(following["stderr"]),
                      "removed_temporaries": "left by an interrupted checkpoint save" in following["stdout"]})
    return {"workdir": workdir, "kills": kills, "final": runs[-1], "digest": digest_of(runs[-1]["stdout"])}


def signal_chain(processes, root) -> dict:
    """SIGTERM, SIGINT and a double SIGTERM during training (``--save_every`` beyond the run, so that every
    checkpoint is one written on a signal), each followed by the same command; then the run completes."""
    workdir = os.path.join(root, "signalled")
    args = train_args(workdir, "--save_every=1000")
    cmd = module_cmd("mmali_tf.train", args)
    stops = []
    for name in ("SIGTERM", "SIGINT"):
        result = run_until(processes, cmd, at_step(1, lambda p, s=getattr(signal, name): p.send_signal(s)))
        stops.append({"signal": name, "start": resumed_step(result["stdout"]), **result,
                      "checkpoints": checkpoint_files(workdir)})

    sent = []

    def twice(line, process):
        if line.startswith("step ") and not sent:
            sent.append(time.perf_counter())
            process.send_signal(signal.SIGTERM)
        elif line.startswith("received SIGTERM"):
            process.send_signal(signal.SIGTERM)  # the first one is being handled: this one must end it at once
            return True
        return False

    double = run_until(processes, cmd, twice)
    final = run_until(processes, cmd)
    return {"workdir": workdir, "args": args, "stops": stops, "double": double, "final": final,
            "digest": digest_of(final["stdout"])}


# ---------------------------------------------------------------------------------------------------- driver cases
# Every case runs in tests/cli_driver.py: (id, kind, module, argv, exit status, fragments of the last line, env).
# Placeholders: {file} a file, {missing} a path that does not exist, {empty} an empty directory, {good} REFERENCE's
# run directory (hashed before and after: kind "good run"), {nockpt} a run directory with config.json only,
# {bad_config} a copy of the good run with a garbled config.json, {corrupt_data} a data directory with a corrupt
# mnist.npz, {svhn_empty} one with mnist.npz and an empty train_32x32.mat, {ro} the good run mounted read-only,
# {copy} this case's own copy of the good run (damaged as DAMAGE says), {full} a tiny file system, {root} a
# scratch directory.
TRAIN, EVALUATE, EXPORT = "mmali_tf.train", "mmali_tf.evaluate", "mmali_tf.export"
MALFORMED_TF_CONFIG = {"TF_CONFIG": "{not json"}
NO_CLASSIFIERS = ["--train_classifiers=false", "--classifier_dir={empty}"]
DATA = "ckpt-{}.data-00000-of-00001"
CASES = [
    # Damaged checkpoints, each in its own copy of the good run (ckpt-6, ckpt-8, ckpt-10). The first case trains,
    # so it must come first: the driver's TensorFlow then starts with training's thread counts (bit-exactness).
    ("data-garbled-then-train", "damaged", TRAIN, train_args("{copy}"), 0, ()),
    *[(f"state-{how}", "damaged", TRAIN, train_args("{copy}"), 0, ()) for how in ("deleted", "truncated", "empty",
                                                                                  "garbled")],
    ("state-deleted-other-config", "damaged", TRAIN, train_args("{copy}", "--latent_dim=16", "--style_dim=8"), 1,
     ("holds a run with a different config", "model.latent_dim")),
    *[(f"{part}-{how}", "damaged", TRAIN, train_args("{copy}", "--max_iter=8"), 0, ())
      for part in ("index", "data") for how in ("deleted", "truncated", "empty", "garbled")
      if (part, how) != ("data", "garbled")],
    ("all-data-empty", "damaged", TRAIN, train_args("{copy}"), 1,
     ("holds checkpoint files but none restores (ckpt-10, ckpt-8, ckpt-6)", "refusing to start from step 0")),
    ("all-index-deleted", "damaged", TRAIN, train_args("{copy}"), 1, ("none restores",)),
    ("stale-temporaries", "damaged", TRAIN, train_args("{copy}"), 0, ()),
    ("evaluate-falls-back", "damaged", EVALUATE, ["--workdir={copy}", *NO_CLASSIFIERS], 1,
     ("no mnist classifier for mnist",)),
    ("evaluate-refuses", "damaged", EVALUATE, ["--workdir={copy}"], 1, ("none restores", "nothing to evaluate")),
    ("export-falls-back", "damaged", EXPORT, ["--workdir={copy}", "--export_dir={root}/exports/fallback/1"], 0, ()),
    ("export-refuses", "damaged", EXPORT, ["--workdir={copy}", "--export_dir={root}/exports/refused/1"], 1,
     ("none restores",)),
    # Failing commands on the good run: it must stay byte-identical.
    ("train-corrupt-data-on-good", "good run", TRAIN, train_args("{good}", "--data_dir={corrupt_data}"), 1,
     ("mnist.npz",)),
    ("train-other-config-on-good", "good run", TRAIN, train_args("{good}", "--latent_dim=16", "--style_dim=8"), 1,
     ("different config",)),
    ("train-bad-value-on-good", "good run", TRAIN, train_args("{good}", "--batch_size=0"), 1, ("batch_size",)),
    ("train-bad-tf-config-on-good", "good run", TRAIN, train_args("{good}", "--strategy=multi_worker"), 1,
     ("malformed TF_CONFIG",), MALFORMED_TF_CONFIG),
    ("evaluate-missing-checkpoint", "good run", EVALUATE,
     ["--workdir={good}", "--checkpoint={good}/checkpoints/ckpt-99"], 1, ("no checkpoint", "ckpt-99.index")),
    ("evaluate-bad-metric", "good run", EVALUATE, ["--workdir={good}", "--metrics=latent,bogus"], 1,
     ("unknown metric 'bogus'",)),
    ("evaluate-corrupt-data", "good run", EVALUATE, ["--workdir={good}", "--data_dir={corrupt_data}"], 1,
     ("mnist.npz",)),
    ("evaluate-classifier-dir-is-a-file", "good run", EVALUATE, ["--workdir={good}", "--classifier_dir={file}"], 1,
     ("classifier directory", "exists and is not a directory")),
    ("evaluate-no-classifiers", "good run", EVALUATE, ["--workdir={good}", *NO_CLASSIFIERS], 1,
     ("no mnist classifier",)),
    ("export-target-exists", "good run", EXPORT, ["--workdir={good}", "--export_dir={good}"], 1,
     ("already exists; pass --overwrite",)),
    ("export-parent-is-a-file", "good run", EXPORT, ["--workdir={good}", "--export_dir={file}/1"], 1,
     ("exists and is not a directory",)),
    ("export-missing-checkpoint", "good run", EXPORT,
     ["--workdir={good}", "--checkpoint={good}/checkpoints/ckpt-99", "--export_dir={root}/exports/none/1"], 1,
     ("no checkpoint",)),
    ("export-disk-full", "disk full", EXPORT, ["--workdir={good}", "--export_dir={full}/export/m/1"], 1,
     ("could not write the export", "No space left on device (disk full)")),
    ("checkpoint-disk-full", "disk full", TRAIN, train_args("{full}/train/run", "--max_iter=4"), 1,
     ("could not write the checkpoint at step 4", "No space left on device (disk full)",
      "the previous checkpoint {full}/train/run/checkpoints/ckpt-2 is intact")),
    ("train-read-only-workdir", "read-only", TRAIN, train_args("{ro}"), 1, ("read-only file system",)),
    ("evaluate-read-only-workdir", "read-only", EVALUATE, ["--workdir={ro}"], 1, ("read-only file system",)),
    ("export-read-only-target", "read-only", EXPORT, ["--workdir={good}", "--export_dir={ro}/exports/1"], 1,
     ("cannot export to", "read-only file system")),
    ("standin-read-only-out-dir", "read-only", "mmali_tf.tools.make_svhn_standin", ["--out_dir={ro}/standin"], 2,
     ("read-only file system",)),
    # Bad input.
    ("train-workdir-is-a-file", "bad input", TRAIN, train_args("{file}"), 1, ("exists and is not a directory",)),
    ("train-workdir-under-a-file", "bad input", TRAIN, train_args("{file}/run"), 1, ("is not a directory",)),
    ("train-no-workdir", "bad input", TRAIN, MODEL, 1, ("--workdir is required",)),
    ("train-unknown-preset", "bad input", TRAIN, train_args("{root}/t", "--config=nosuch"), 1,
     ("unknown config 'nosuch'",)),
    ("train-bad-modality", "bad input", TRAIN, train_args("{root}/t", "--modalities=a:mnist"), 1, ("modality",)),
    ("train-unknown-flag", "bad input", TRAIN, train_args("{root}/t", "--no_such_flag=1"), 2, ("no_such_flag",)),
    ("train-positional-argument", "bad input", TRAIN, train_args("{root}/t", "oops"), 2, ("positional",)),
    ("train-missing-data-dir", "bad input", TRAIN, train_args("{root}/t", "--data_dir={missing}"), 1,
     ("does not exist",)),
    ("train-no-data", "bad input", TRAIN, train_args("{root}/t", "--data_dir={empty}"), 1, ("MNIST",)),
    ("train-empty-svhn-mat", "bad input", TRAIN,
     train_args("{root}/t", "--modalities=a:mnist:mnist,b:svhn:svhn", "--data_dir={svhn_empty}"), 1,
     ("train_32x32.mat",)),
    ("train-tf-config-task-outside", "bad input", TRAIN, train_args("{root}/t", "--strategy=multi_worker"), 1,
     ("not in the cluster",),
     {"TF_CONFIG": json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}})}),
    ("train-garbled-config-json", "bad input", TRAIN, train_args("{bad_config}"), 1, ("is not valid JSON",)),
    ("train-nan-learning-rate", "bad input", TRAIN, train_args("{root}/t", "--lr=nan"), 1,
     ("lr must be a finite number, got nan",)),
    ("evaluate-no-workdir", "bad input", EVALUATE, [], 2, ("--workdir",)),
    ("evaluate-missing-workdir", "bad input", EVALUATE, ["--workdir={missing}"], 1, ("does not exist",)),
    ("evaluate-workdir-is-a-file", "bad input", EVALUATE, ["--workdir={file}"], 1, ("is not a directory",)),
    ("evaluate-not-a-run", "bad input", EVALUATE, ["--workdir={empty}"], 1, ("no config at",)),
    ("evaluate-run-without-checkpoints", "bad input", EVALUATE, ["--workdir={nockpt}"], 1, ("no checkpoint in",)),
    ("evaluate-bad-protocol", "bad input", EVALUATE, ["--workdir={good}", "--protocol=strict"], 2, ("protocol",)),
    ("evaluate-untrained-and-checkpoint", "bad input", EVALUATE,
     ["--workdir={good}", "--untrained", "--checkpoint=x"], 1, ("exclude each other",)),
    ("evaluate-garbled-config-json", "bad input", EVALUATE, ["--workdir={bad_config}"], 1, ("is not valid JSON",)),
    ("export-no-export-dir", "bad input", EXPORT, ["--workdir={good}"], 2, ("--export_dir",)),
    ("export-missing-workdir", "bad input", EXPORT, ["--workdir={missing}", "--export_dir={root}/e/1"], 1,
     ("no run directory",)),
    ("export-run-without-checkpoints", "bad input", EXPORT, ["--workdir={nockpt}", "--export_dir={root}/e/1"], 1,
     ("no checkpoint in",)),
    ("launch-no-training-arguments", "bad input", "mmali_tf.launch", [], 1, ("give the training arguments",)),
    ("launch-no-workers", "bad input", "mmali_tf.launch", ["--workers=0"], 2, ("--workers=0",)),
    ("benchmark-train-unknown-config", "bad input", "tools.benchmark_train", ["--configs=nosuch"], 2,
     ("unknown 'nosuch'",)),
    ("benchmark-train-missing-data-dir", "bad input", "tools.benchmark_train", ["--data_dir={missing}"],
     2, ("no such directory",)),
    ("benchmark-vs-authors-no-reference", "bad input", "tools.benchmark_vs_authors", [], 2,
     ("--reference_dir is required",)),
    ("benchmark-vs-authors-not-their-tree", "bad input", "tools.benchmark_vs_authors",
     ["--reference_dir={empty}"], 2, ("not a work tree",)),
    ("profile-unknown-preset", "bad input", "tools.profile_train", ["--config=nosuch"], 2,
     ("unknown config 'nosuch'",)),
    ("profile-logdir-is-a-file", "bad input", "tools.profile_train", ["--logdir={file}"], 2,
     ("exists and is not a directory",)),
    ("table1-bad-modalities", "bad input", "mmali_tf.tools.run_table1", ["--modalities=7"], 2, ("unknown '7'",)),
    ("table1-root-is-a-file", "bad input", "mmali_tf.tools.run_table1", ["--root={file}"], 2,
     ("exists and is not a directory",)),
    ("curves-bad-steps", "bad input", "mmali_tf.tools.learning_curves", ["--steps=100,0"], 2,
     ("steps must be positive",)),
    ("curves-unknown-preset", "bad input", "mmali_tf.tools.learning_curves", ["--root={root}/c", "--configs=nosuch"],
     1, ("unknown config 'nosuch'",)),
    ("curves-plot-only-no-records", "bad input", "mmali_tf.tools.learning_curves",
     ["--root={root}/c", "--plot_only", "--plot={root}/c.png"], 1, ("no records in",)),
    ("classifiers-no-choice", "bad input", "mmali_tf.tools.train_classifiers", [], 2, ("exactly one of",)),
    ("classifiers-no-data", "bad input", "mmali_tf.tools.train_classifiers",
     ["--datasets=mnist:mnist", "--data_dir={empty}", "--out_dir={root}/classifiers"], 1, ("MNIST",)),
    ("standin-out-dir-is-a-file", "bad input", "mmali_tf.tools.make_svhn_standin", ["--out_dir={file}"], 2,
     ("exists and is not a directory",)),
    ("standin-out-dir-under-a-file", "bad input", "mmali_tf.tools.make_svhn_standin", ["--out_dir={file}/s"], 2,
     ("is not a directory",)),
    ("equal-budget-unknown-preset", "bad input", "tools.equal_budget", ["--config=nosuch", "--root={root}/eb"], 1,
     ("unknown config 'nosuch'",)),
    ("equal-budget-theirs-without-reference", "bad input", "tools.equal_budget",
     ["--sides=theirs", "--root={root}/eb"], 1, ("needs --reference_dir",)),
    ("pack-images-missing-folder", "bad input", "mmali_tf.tools.pack_images",
     ["--image_dir={missing}", "--out_dir={root}/packed"], 2, ("no such directory",)),
    ("pack-images-no-modality-folders", "bad input", "mmali_tf.tools.pack_images",
     ["--image_dir={empty}", "--out_dir={root}/packed"], 1, ("one sub-folder of image files per modality",)),
    ("digits-to-images-out-dir-is-a-file", "bad input", "mmali_tf.tools.digits_to_images", ["--out_dir={file}"], 2,
     ("exists and is not a directory",)),
    ("mutation-check-no-such-mutation", "bad input", "tools.mutation_check", ["--only=nothing"], 2,
     ("no mutation name contains 'nothing'",)),
    ("cub-standin-out-dir-is-a-file", "bad input", "mmali_tf.tools.make_cub_standin", ["--out_dir={file}"], 2,
     ("exists and is not a directory",)),
    ("cub-standin-too-few-images", "bad input", "mmali_tf.tools.make_cub_standin",
     ["--out_dir={root}/cub_standin", "--test_images=49"], 2, ("--test_images must be >= 50",)),
    ("prepare-cub-no-weights", "bad input", "mmali_tf.tools.prepare_cub",
     ["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={root}/cub_data"], 2,
     ("pass exactly one of --resnet_weights",)),
    ("prepare-cub-missing-cub-dir", "bad input", "mmali_tf.tools.prepare_cub",
     ["--cub_dir={missing}", "--birds_dir={empty}", "--out_dir={root}/cub_data", "--resnet_weights=none"], 2,
     ("flag --cub_dir=", "no such directory")),
    ("prepare-cub-no-pickles", "bad input", "mmali_tf.tools.prepare_cub",
     ["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={root}/cub_data", "--resnet_weights=none"], 1,
     ("char-CNN-RNN-embeddings.pickle: missing",)),
    ("cub-to-vectors-no-features", "bad input", "mmali_tf.tools.cub_to_vectors",
     ["--data_dir={empty}", "--out_dir={root}/cub_vectors"], 1, ("no CUB features in",)),
    ("cub-to-vectors-bad-captions", "bad input", "mmali_tf.tools.cub_to_vectors",
     ["--data_dir={empty}", "--out_dir={root}/cub_vectors", "--captions=some"], 2, ("flag --captions=some",)),
]
CASE_IDS = [case[0] for case in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)


def _tools() -> list[str]:
    """The command modules (those with an entry point) of mmali_tf/tools (user tools) and tools/ (developer tools)."""
    found = []
    for package in ("mmali_tf.tools", "tools"):
        folder = os.path.join(REPO, *package.split("."))
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    if "def entry_point" in f.read():
                        found.append(f"{package}.{name[:-3]}")
    return found


TOOLS = _tools()

# What to damage in the copy of the good run of each "damaged" case: [(file in checkpoints/, how)].
DAMAGE = {
    "data-garbled-then-train": [(DATA.format(10), "garbled")],
    **{f"state-{how}": [("checkpoint", how)] for how in ("deleted", "truncated", "empty", "garbled")},
    "state-deleted-other-config": [("checkpoint", "deleted")],
    **{f"index-{how}": [("ckpt-10.index", how)] for how in ("deleted", "truncated", "empty", "garbled")},
    **{f"data-{how}": [(DATA.format(10), how)] for how in ("deleted", "truncated", "empty")},
    "all-data-empty": [(DATA.format(step), "empty") for step in (6, 8, 10)],
    "all-index-deleted": [(f"ckpt-{step}.index", "deleted") for step in (6, 8, 10)],
    "stale-temporaries": [],
    "evaluate-falls-back": [(DATA.format(10), "empty")],
    "evaluate-refuses": [(DATA.format(step), "truncated") for step in (6, 8, 10)],
    "export-falls-back": [("ckpt-10.index", "garbled")],
    "export-refuses": [(DATA.format(step), "garbled") for step in (6, 8, 10)],
}
STALE = ["ckpt-12_temp/part-00000-of-00001.data-00000-of-00001", "checkpoint.tmp.4242",
         "checkpoint.tmp0123456789abcdef0123456789abcdef"]
STALE_EXPORT = ".1.tmp-deadbeef"
# A command whose code swallows the exception of a stop signal, as TensorFlow's C++ code can ("SystemError: ...
# returned a result with an exception set"), then sends a second signal (``again``) or goes on for a minute.
SWALLOWING = """
import os, signal, time
from mmali_tf import cli


def main(argv):
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    except BaseException:
        pass
    if {again}:
        os.kill(os.getpid(), signal.SIGINT)
        print("the second signal did not end it", flush=True)
    time.sleep(60)
    print("the command went on", flush=True)


cli.run_main(main)
"""
# Real processes (TensorFlow's start-up output included): (id, module, argv, exit status, fragment, signal, when):
# a signal is sent at a random moment while TensorFlow loads, or when the first stdout line appears ("role: ...",
# TensorFlow loaded, training not started). Module None: argv are the interpreter's.
REAL = [
    ("stop-signal-swallowed-by-the-command", None, ["-c", SWALLOWING.format(again=False)], 130,
     "interrupted by SIGINT (Ctrl-C); run the same command again", signal.SIGINT, None),
    ("second-stop-signal-at-start-up", None, ["-c", SWALLOWING.format(again=True)], 130,
     "interrupted by SIGINT (Ctrl-C); run the same command again", signal.SIGINT, None),
    ("train-workdir-is-a-file", TRAIN, train_args("{file}"), 1, "exists and is not a directory", None, None),
    ("export-parent-is-a-file", EXPORT, ["--workdir={good}", "--export_dir={file}/1"], 1, "is not a directory",
     None, None),
    ("evaluate-run-without-checkpoints", EVALUATE, ["--workdir={nockpt_real}"], 1, "no checkpoint in", None, None),
    ("standin-out-dir-is-a-file", "mmali_tf.tools.make_svhn_standin", ["--out_dir={file}"], 2,
     "exists and is not a directory", None, None),
    ("ctrl-c-while-tensorflow-loads", TRAIN, train_args("{root}/sigint_import"), 130,
     "interrupted by SIGINT (Ctrl-C); run the same command again", signal.SIGINT, "random"),
    ("sigterm-while-tensorflow-loads", TRAIN, train_args("{root}/sigterm_import"), 143,
     "terminated by SIGTERM; run the same command again", signal.SIGTERM, "random"),
    ("ctrl-c-during-start-up", TRAIN, train_args("{root}/sigint_start"), 130,
     "interrupted by SIGINT (Ctrl-C); run the same command again", signal.SIGINT, "first line"),
]


class Lab:
    """The suite's shared state: scratch root, processes, background runs, mounts."""

    def __init__(self, root: str):
        self.root = root
        self.processes = Processes()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)
        self.mounts = contextlib.ExitStack()
        self.runs = {"reference": self.pool.submit(reference_run, self.processes, root),
                     "kills": self.pool.submit(kill_loop, self.processes, root),
                     "signals": self.pool.submit(signal_chain, self.processes, root)}

    def result(self, name: str) -> dict:
        return self.runs[name].result(timeout=1800)

    def close(self) -> None:
        self.processes.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.mounts.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # pytest started as a background job (e.g. `bash .ci/run &`) ignores SIGINT, and its children would inherit
        # that; a handler is reset to the default on exec, so the commands start with Ctrl-C as from a terminal
        signal.signal(signal.SIGINT, signal.default_int_handler)
    lab = Lab(str(tmp_path_factory.mktemp("reliability")))
    try:
        yield lab
    finally:
        lab.close()


def mount(lab: Lab, *args: str) -> bool:
    """``mount ARGS`` (the last one the mount point), unmounted when the suite ends; False if it cannot."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    if subprocess.run(["mount", *args], capture_output=True).returncode != 0:
        return False
    lab.mounts.callback(subprocess.run, ["umount", args[-1]], capture_output=True)
    return True


def read_only_view(lab: Lab, source: str, target: str) -> bool:
    """``target`` shows ``source`` read-only (a read-only bind mount); False if the test cannot mount."""
    os.makedirs(target)
    if not mount(lab, "--bind", source, target):
        return False
    return subprocess.run(["mount", "-o", "remount,bind,ro", target], capture_output=True).returncode == 0


def prepare(lab: Lab, good: str) -> dict:
    """The placeholders of CASES and REAL, with everything they name created."""
    root = lab.root
    rng = np.random.default_rng(SEED + 2)
    paths = {"root": root, "good": good, "file": os.path.join(root, "a_file"), "missing": os.path.join(root, "nope"),
             "empty": os.path.join(root, "empty"), "full": os.path.join(root, "full")}
    with open(paths["file"], "w") as f:
        f.write("not a directory\n")
    os.makedirs(paths["empty"])
    for name in ("nockpt", "nockpt_real"):
        paths[name] = os.path.join(root, name)
        os.makedirs(paths[name])
        shutil.copy2(os.path.join(good, "config.json"), paths[name])
    paths["bad_config"] = copy_run(good, os.path.join(root, "bad_config"))
    damage(os.path.join(paths["bad_config"], "config.json"), "garbled", rng)
    paths["corrupt_data"] = os.path.join(root, "corrupt_data")
    os.makedirs(paths["corrupt_data"])
    with open(os.path.join(paths["corrupt_data"], "mnist.npz"), "wb") as f:
        f.write(b"PK\x03\x04 not a zip archive")
    paths["svhn_empty"] = os.path.join(root, "svhn_empty")
    os.makedirs(paths["svhn_empty"])
    os.symlink(os.path.join(DATA_DIR, "mnist.npz"), os.path.join(paths["svhn_empty"], "mnist.npz"))
    open(os.path.join(paths["svhn_empty"], "train_32x32.mat"), "wb").close()
    paths["ro"] = os.path.join(root, "read_only")
    lab.read_only = read_only_view(lab, good, paths["ro"])
    # A full disk: a file system with room for one checkpoint (training) or for less than an export.
    ckpt_size = os.path.getsize(os.path.join(good, "checkpoints", DATA.format(10)))
    lab.tmpfs = True
    for name, size in (("train", ckpt_size * 3 // 2 + 2 ** 20), ("export", 2 ** 20)):
        os.makedirs(os.path.join(paths["full"], name))
        lab.tmpfs &= mount(lab, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", os.path.join(paths["full"], name))
    for case_id, damages in DAMAGE.items():
        copy = copy_run(good, os.path.join(root, "copies", case_id))
        for name, how in damages:
            damage(os.path.join(copy, "checkpoints", name), how, rng)
    for name in STALE:
        path = os.path.join(root, "copies", "stale-temporaries", "checkpoints", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"left by a kill")
    os.makedirs(os.path.join(root, "exports", "fallback", STALE_EXPORT))
    return paths


def fill(value, paths: dict, case_id: str | None = None):
    """``value`` (a string or a list of them) with the placeholders filled in."""
    if isinstance(value, (list, tuple)):
        return [fill(v, paths, case_id) for v in value]
    copy = os.path.join(paths["root"], "copies", case_id) if case_id else None
    return value.format(**paths, copy=copy)


def start_real(lab: Lab, paths: dict) -> dict:
    """Start the REAL cases, their signals sent by timers or on the first stdout line; returns a function that
    waits for them and returns id -> {code, stdout, stderr}."""
    rng = np.random.default_rng(SEED + 3)
    started = {}
    for case_id, module, argv, _, _, signum, when in REAL:
        cmd = module_cmd(module, fill(argv, paths)) if module else [sys.executable, *argv]
        process = lab.processes.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first, reader = [], None
        if when == "random":  # while TensorFlow loads (seconds on any machine)
            threading.Timer(float(rng.uniform(0.5, 2.0)), process.send_signal, (signum,)).start()
        elif when == "first line":  # "role: ...": TensorFlow is loaded, training has not started

            def on_first_line(process=process, signum=signum, first=first):
                first.append(process.stdout.readline())
                process.send_signal(signum)

            reader = threading.Thread(target=on_first_line)
            reader.start()
        started[case_id] = (process, reader, first)

    def wait() -> dict:
        results = {}
        for case_id, (process, reader, first) in started.items():
            if reader is not None:
                reader.join()
            stdout, stderr = lab.processes.finish(process)
            results[case_id] = {"code": process.returncode, "stdout": "".join(first) + stdout, "stderr": stderr}
        return results

    return wait


@pytest.fixture(scope="module")
def driver(lab):
    """Every CASES command line in one interpreter (tests/cli_driver.py) and the REAL processes beside it, on the
    good run directory (REFERENCE's) and the prepared copies."""
    reference = lab.result("reference")
    good = reference["workdir"]
    paths = prepare(lab, good)
    plan, skipped = [], set()
    for case_id, kind, module, argv, *_rest in CASES:
        if kind == "read-only" and not lab.read_only:
            skipped.add(case_id)
            continue
        case = {"module": module, "argv": fill(argv, paths, case_id), "env": {**(_rest[2] if len(_rest) > 2 else {})}}
        if kind == "disk full" and not lab.tmpfs:
            case["inject"] = "enospc_export" if module == EXPORT else "enospc_checkpoint"
        plan.append((case_id, case))
    watched = [good, paths["nockpt"], paths["nockpt_real"], paths["bad_config"]] + [
        os.path.join(lab.root, "copies", i) for i in ("all-data-empty", "all-index-deleted", "evaluate-refuses",
                                                       "export-refuses", "state-deleted-other-config")]
    before = {path: hash_tree(path) for path in watched}
    real = start_real(lab, paths)
    plan_path, results_path = os.path.join(lab.root, "plan.json"), os.path.join(lab.root, "results.json")
    with open(plan_path, "w") as f:
        json.dump([case for _, case in plan], f)
    started = time.perf_counter()
    process = lab.processes.start(module_cmd("tests.cli_driver", [plan_path, results_path]), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
    out, err = lab.processes.finish(process, timeout=1800)
    assert process.returncode == 0, (out[-2000:], err[-3000:])
    with open(results_path) as f:
        results = dict(zip([case_id for case_id, _ in plan], json.load(f)))
    seconds = time.perf_counter() - started
    real_results = real()
    after = {path: hash_tree(path) for path in watched}
    SUMMARY["driver"] = f"{len(plan)} command lines in one interpreter, {seconds:.0f} s"
    return {"results": results, "skipped": skipped, "paths": paths, "before": before, "after": after,
            "real": real_results, "reference": reference, "tmpfs": lab.tmpfs}


def result_of(driver, case_id: str) -> dict:
    if case_id in driver["skipped"]:
        pytest.skip(f"{case_id}: this machine cannot mount a read-only view (not root, or no mount)")
    return driver["results"][case_id]


def case(case_id: str) -> tuple:
    return next(c for c in CASES if c[0] == case_id)


# ---------------------------------------------------------------------------------------------------- tests
ONE_LINE = [c[0] for c in CASES if c[1] in ("bad input", "good run", "read-only")]


def test_every_entry_point_and_tool_has_bad_input_cases():
    modules = {c[2] for c in CASES if c[1] == "bad input"}
    assert {TRAIN, EVALUATE, EXPORT, "mmali_tf.launch", *TOOLS} <= modules, sorted(modules)
    assert sum(c[1] == "bad input" for c in CASES) + sum(r[5] is None for r in REAL) >= 30


@pytest.mark.parametrize("case_id", ONE_LINE)
def test_failure_is_one_error_line_and_exit_status(driver, case_id):
    result = result_of(driver, case_id)
    _, kind, _, _, code, fragments, *_ = case(case_id)
    assert_fails_with_one_line(result["code"], result["stderr"], code, *fill(list(fragments), driver["paths"]))
    SUMMARY.setdefault("one_line", set()).add(case_id)


def test_failing_commands_leave_the_good_run_byte_identical(driver):
    for path, before in driver["before"].items():
        assert driver["after"][path] == before, path
    assert not os.path.exists(os.path.join(driver["paths"]["good"], "classifiers"))  # evaluate trained nothing
    assert not os.path.exists(os.path.join(driver["paths"]["nockpt"], "classifiers"))
    on_good = [c[0] for c in CASES if c[4] != 0 and c[0] not in driver["skipped"]
               and ("{good}" in " ".join(c[3]) or "{ro}" in " ".join(c[3]))]
    SUMMARY["byte_identical"] = (len(on_good), len(driver["before"]))


@pytest.mark.parametrize("how", ["deleted", "truncated", "empty", "garbled"])
def test_damaged_state_file_is_rebuilt_from_the_files(driver, how):
    case_id = f"state-{how}"
    result, copy = result_of(driver, case_id), fill("{copy}", driver["paths"], case_id)
    assert result["code"] == 0, result["stderr"][-3000:]
    assert warnings_in(result["stderr"]) == [] and "Traceback" not in result["stderr"]
    assert f"resumed from {copy}/checkpoints/ckpt-10 at step 10" in result["stdout"]
    assert "rebuilt the checkpoint state file" in result["stdout"]
    assert state_file(copy) == ("ckpt-10", ["ckpt-6", "ckpt-8", "ckpt-10"])
    SUMMARY.setdefault("damaged", set()).add(case_id)


def test_a_deleted_state_file_does_not_skip_the_config_check(driver):
    result = result_of(driver, "state-deleted-other-config")
    assert_fails_with_one_line(result["code"], result["stderr"], 1, *case("state-deleted-other-config")[5])
    SUMMARY.setdefault("damaged", set()).add("state-deleted-other-config")


@pytest.mark.parametrize("case_id", [f"{p}-{h}" for p in ("index", "data") for h in ("deleted", "truncated", "empty",
                                                                                      "garbled") if p + h != "datagarbled"])
def test_damaged_newest_checkpoint_falls_back_with_one_warning(driver, case_id):
    result, copy = result_of(driver, case_id), fill("{copy}", driver["paths"], case_id)
    assert result["code"] == 0, result["stderr"][-3000:]
    warnings = warnings_in(result["stderr"])
    assert len(warnings) == 1, result["stderr"]
    assert f"{copy}/checkpoints/ckpt-10" in warnings[0] and warnings[0].endswith("; trying ckpt-8"), warnings
    assert f"resumed from {copy}/checkpoints/ckpt-8 at step 8" in result["stdout"]
    assert "rebuilt the checkpoint state file" in result["stdout"]
    assert state_file(copy) == ("ckpt-8", ["ckpt-6", "ckpt-8"])
    SUMMARY.setdefault("damaged", set()).add(case_id)


def test_fallback_then_training_ends_bit_exact(driver):
    case_id = "data-garbled-then-train"
    result, copy = result_of(driver, case_id), fill("{copy}", driver["paths"], case_id)
    assert result["code"] == 0, result["stderr"][-3000:]
    warnings = warnings_in(result["stderr"])
    assert len(warnings) == 1 and "ckpt-10" in warnings[0] and "trying ckpt-8" in warnings[0], result["stderr"]
    assert f"resumed from {copy}/checkpoints/ckpt-8 at step 8" in result["stdout"]
    assert digest_of(result["stdout"]) == driver["reference"]["digest"] is not None
    assert state_file(copy) == ("ckpt-10", ["ckpt-6", "ckpt-8", "ckpt-10"])
    SUMMARY.setdefault("damaged", set()).add(case_id)
    SUMMARY.setdefault("bit_exact", {})["fallback from a garbled ckpt-10, trained again"] = True


@pytest.mark.parametrize("case_id", ["all-data-empty", "all-index-deleted", "evaluate-refuses", "export-refuses"])
def test_nothing_restorable_is_refused_with_one_line_and_nothing_written(driver, case_id):
    result, copy = result_of(driver, case_id), fill("{copy}", driver["paths"], case_id)
    _, _, _, _, code, fragments, *_ = case(case_id)
    assert_fails_with_one_line(result["code"], result["stderr"], code, *fragments)
    assert len(warnings_in(result["stderr"])) == 3  # one per damaged checkpoint, before the error line
    assert driver["after"][copy] == driver["before"][copy]
    assert not os.path.exists(os.path.join(driver["paths"]["root"], "exports", "refused"))
    SUMMARY.setdefault("damaged", set()).add(case_id)


def test_stale_temporaries_are_removed_at_start_up_with_one_line(driver):
    case_id = "stale-temporaries"
    result, copy = result_of(driver, case_id), fill("{copy}", driver["paths"], case_id)
    assert result["code"] == 0, result["stderr"][-3000:]
    lines = [line for line in result["stdout"].splitlines() if "left by an interrupted checkpoint save" in line]
    assert len(lines) == 1 and lines[0].startswith("removed 3 temporary file(s)"), result["stdout"]
    assert checkpoint_files(copy) == ["checkpoint", DATA.format(10), "ckpt-10.index", DATA.format(6), "ckpt-6.index",
                                      DATA.format(8), "ckpt-8.index"]
    SUMMARY.setdefault("damaged", set()).add(case_id)


def test_evaluate_falls_back_before_any_expensive_work(driver):
    case_id = "evaluate-falls-back"
    result, copy = result_of(driver, case_id), fill("{copy}", driver["paths"], case_id)
    assert_fails_with_one_line(result["code"], result["stderr"], 1, *case(case_id)[5])
    warnings = warnings_in(result["stderr"])
    assert len(warnings) == 1 and f"{copy}/checkpoints/ckpt-10" in warnings[0], result["stderr"]
    assert f"evaluating {copy}/checkpoints/ckpt-8 (step 8, ema weights)" in result["stdout"]
    assert "training the" not in result["stdout"]
    SUMMARY.setdefault("damaged", set()).add(case_id)


def test_export_falls_back_and_cleans_an_interrupted_export(driver):
    case_id = "export-falls-back"
    result = result_of(driver, case_id)
    assert result["code"] == 0, result["stderr"][-3000:]
    warnings = warnings_in(result["stderr"])
    assert len(warnings) == 1 and "ckpt-10" in warnings[0] and "trying ckpt-8" in warnings[0], result["stderr"]
    assert "exported step 8 from" in result["stdout"]
    target = os.path.join(driver["paths"]["root"], "exports", "fallback")
    removed = [line for line in result["stdout"].splitlines() if "by an interrupted export" in line]
    assert len(removed) == 1 and removed[0].startswith(f"removed {STALE_EXPORT}"), result["stdout"]
    assert os.listdir(target) == ["1"]
    with open(os.path.join(target, "1", "assets.extra", "mmali_metadata.json")) as f:
        assert json.load(f)["step"] == 8
    SUMMARY.setdefault("damaged", set()).add(case_id)


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(driver):
    import tensorflow as tf

    result = result_of(driver, "checkpoint-disk-full")
    _, _, _, _, code, fragments, *_ = case("checkpoint-disk-full")
    assert_fails_with_one_line(result["code"], result["stderr"], code, *fill(list(fragments), driver["paths"]))
    run = os.path.join(driver["paths"]["full"], "train", "run")
    assert checkpoint_files(run) == ["checkpoint", DATA.format(2), "ckpt-2.index"]  # no temporary, no ckpt-4 part
    reader = tf.train.load_checkpoint(os.path.join(run, "checkpoints", "ckpt-2"))
    for name in reader.get_variable_to_shape_map():  # every tensor reads back (checksums verified)
        reader.get_tensor(name)
    assert state_file(run)[0] == "ckpt-2"
    SUMMARY["disk_full"] = "a tiny tmpfs" if driver["tmpfs"] else "fault injection (this machine cannot mount)"


def test_disk_full_during_an_export_leaves_nothing(driver):
    result = result_of(driver, "export-disk-full")
    _, _, _, _, code, fragments, *_ = case("export-disk-full")
    assert_fails_with_one_line(result["code"], result["stderr"], code, *fragments)
    parent = os.path.join(driver["paths"]["full"], "export", "m")
    assert os.listdir(parent) == []  # the hidden temporary export folder is gone


@pytest.mark.parametrize("case_id", [r[0] for r in REAL])
def test_real_process_ends_with_one_line_alone(driver, case_id):
    """Nothing else on stderr: not TensorFlow's start-up notices, not a traceback."""
    result = driver["real"][case_id]
    _, module, argv, code, fragment, signum, _ = next(r for r in REAL if r[0] == case_id)
    lines = stderr_lines(result["stderr"])
    assert result["code"] == code and len(lines) == 1, (result["code"], result["stderr"][-3000:])
    if signum is None:
        assert lines[0].startswith("error: ") and fragment in lines[0], lines
    else:
        assert lines[0] == fragment, lines
    if case_id == "evaluate-run-without-checkpoints":
        assert os.listdir(driver["paths"]["nockpt_real"]) == ["config.json"]
    if module is None:  # ended by the backstop, or at once by the second signal
        assert "went on" not in result["stdout"] and "did not end it" not in result["stdout"], result["stdout"]
    if signum is not None and "loads" in case_id:
        assert not os.path.exists(fill(argv[-1].split("=", 1)[1], driver["paths"]))  # nothing was written
    SUMMARY.setdefault("real", set()).add(case_id)


def test_non_finite_losses_stop_training_naming_the_terms_and_the_last_good_checkpoint():
    from mmali_tf.errors import TrainingDiverged
    from mmali_tf.monitoring import Monitor

    saved = []
    monitor = Monitor(save_fn=lambda step: saved.append(step) or f"ckpt-{step}", writer=None, max_iter=10,
                      log_every=2, save_every=2, image_every=0, batch_size=8, start_step=0, print_fn=None)
    monitor.after_step(1, {"d_loss": 1.0, "G/a_x_rec": 0.5})
    monitor.after_step(2, {"d_loss": 1.0, "G/a_x_rec": 0.5})
    monitor.after_step(3, {"d_loss": float("nan"), "G/a_x_rec": float("inf")})
    with pytest.raises(TrainingDiverged) as stopped:
        monitor.after_step(4, {"d_loss": 1.0, "G/a_x_rec": 0.5})
    assert str(stopped.value) == "non-finite loss at step 4: G/a_x_rec, d_loss (last good checkpoint: ckpt-2)"
    assert saved == [2]  # nothing saved from the diverged window


def test_an_interrupted_export_is_undone_at_the_next_start(tmp_path):
    from mmali_tf import export

    target = tmp_path / "mmali" / "1"
    moved = tmp_path / "mmali" / ".1.old-0123abcd"  # killed between --overwrite's two renames
    (moved / "variables").mkdir(parents=True)
    (moved / "saved_model.pb").write_text("the previous version")
    (tmp_path / "mmali" / ".1.tmp-89abcdef" / "variables").mkdir(parents=True)
    (tmp_path / "mmali" / ".2.tmp-00000000").mkdir()  # another version's: not ours to touch
    done = export.clean_interrupted(str(target))
    assert len(done) == 2 and done[0].startswith("removed .1.tmp-89abcdef") and done[1].startswith(f"put back {target}")
    assert (target / "saved_model.pb").read_text() == "the previous version"
    assert sorted(os.listdir(tmp_path / "mmali")) == [".2.tmp-00000000", "1"]
    (tmp_path / "mmali" / ".1.old-4567cdef").mkdir()  # the new version is in place: the old one goes
    assert export.clean_interrupted(str(target))[0].startswith("removed .1.old-4567cdef")
    assert sorted(os.listdir(tmp_path / "mmali")) == [".2.tmp-00000000", "1"]


def test_kill_9_loop_resumes_bit_exact_and_loses_at_most_save_every_steps(lab):
    killed, reference = lab.result("kills"), lab.result("reference")
    kills = killed["kills"]
    assert len(kills) >= 3, kills
    for kill in kills:
        assert kill["code"] == -signal.SIGKILL, kill
        assert 0 <= kill["lost"] <= SAVE_EVERY, kill
        # A kill never leaves a damaged checkpoint; at most one cut short before its index was written.
        assert all("files missing" in w for w in kill["warnings"]), kill
    final = killed["final"]
    assert final["code"] == 0 and killed["digest"] == reference["digest"] is not None, final["stderr"][-3000:]
    # Resumed runs still delete beyond --keep_checkpoints (the rebuilt state file lists the older ones).
    assert checkpoint_files(killed["workdir"]) == checkpoint_files(reference["workdir"])
    SUMMARY["kills"] = kills
    SUMMARY.setdefault("bit_exact", {})[f"kill -9 x{len(kills)}"] = True


def test_sigterm_and_sigint_save_the_current_step_and_print_the_resume_command(lab):
    chain = lab.result("signals")
    expected = "python -m mmali_tf.train " + " ".join(shlex.quote(a) for a in chain["args"])
    following = chain["stops"][1:] + [chain["double"]]
    for stop, after in zip(chain["stops"], following):
        code = {"SIGTERM": 143, "SIGINT": 130}[stop["signal"]]
        assert stop["code"] == code, (stop["code"], stop["stderr"][-3000:])
        last = stderr_lines(stop["stderr"])[-1]
        match = re.fullmatch(rf"stopped by {stop['signal']} at step (\d+); checkpoint (\S+); resume with: (.+)", last)
        assert match, last
        step = int(match.group(1))
        assert step > stop["start"] and step % 1000 != 0  # the current step, not a periodic checkpoint
        assert match.group(2) == os.path.join(chain["workdir"], "checkpoints", f"ckpt-{step}")
        assert f"ckpt-{step}.index" in stop["checkpoints"]
        assert match.group(3) == expected
        assert f"received {stop['signal']}: finishing the step and saving a checkpoint" in stop["stdout"]
        assert resumed_step(after["stdout"]) == step  # the rerun loses nothing
    SUMMARY["signals"] = [f"{s['signal']} -> ckpt-{resumed_step(a['stdout'])}, exit {s['code']}"
                          for s, a in zip(chain["stops"], following)]


def test_a_second_signal_exits_at_once(lab):
    chain = lab.result("signals")
    double = chain["double"]
    assert double["code"] == 143, double["stderr"][-3000:]
    assert "stopped by" not in double["stderr"] and "Traceback" not in double["stderr"]
    assert double["seconds_after_act"] is not None and double["seconds_after_act"] < 10
    assert warnings_in(chain["final"]["stderr"]) == []  # and the next run restores without a warning
    SUMMARY.setdefault("signals", []).append(f"double SIGTERM -> exit 143 {double['seconds_after_act']:.1f} s after "
                                             "the second")


def test_runs_stopped_by_signals_end_bit_exact(lab):
    chain, reference = lab.result("signals"), lab.result("reference")
    assert chain["final"]["code"] == 0, chain["final"]["stderr"][-3000:]
    assert chain["digest"] == reference["digest"] is not None
    SUMMARY.setdefault("bit_exact", {})["SIGTERM, SIGINT, double SIGTERM"] = True
    SUMMARY["reference_digest"] = reference["digest"]


def summary_lines(seconds: float) -> list[str]:
    """The suite's summary for the end of the pytest run (tests/conftest.py); empty if none of it ran."""
    if not SUMMARY:
        return []
    kinds = {c[0]: c[1] for c in CASES}
    one_line = SUMMARY.get("one_line", set())
    bad = sum(kinds[i] == "bad input" for i in one_line) + sum(
        r[5] is None for r in REAL if r[0] in SUMMARY.get("real", set()))
    kills = SUMMARY.get("kills", [])
    cases = len(one_line) + len(SUMMARY.get("damaged", ())) + len(SUMMARY.get("real", ())) + len(kills) + len(
        SUMMARY.get("signals", [])) + ("disk_full" in SUMMARY) * 2
    lines = [f"cases: {cases}, of which {bad} bad-input cases (one error line and the exit status checked) across "
             f"train, evaluate, export, launch and {len(TOOLS)} tools; {len(SUMMARY.get('damaged', ()))} damaged-"
             f"checkpoint cases; {len(SUMMARY.get('real', ()))} real processes"]
    if "byte_identical" in SUMMARY:
        commands, folders = SUMMARY["byte_identical"]
        lines.append(f"failing commands on a good run directory: {commands}, every file hashed before and after: "
                     f"byte-identical ({folders} directories watched)")
    if kills:
        lines.append(f"kill -9: {len(kills)} kills ({'; '.join(k['point'] for k in kills)}); steps lost per kill "
                     f"{[k['lost'] for k in kills]} (at most --save_every={SAVE_EVERY}); the next run removed an "
                     f"interrupted save's temporaries after {sum(k['removed_temporaries'] for k in kills)}, warned "
                     f"about a checkpoint cut short after {sum(bool(k['warnings']) for k in kills)}")
    if "signals" in SUMMARY:
        lines.append("signals: " + "; ".join(SUMMARY["signals"]))
    if "disk_full" in SUMMARY:
        lines.append(f"disk full: checkpoint and export, on {SUMMARY['disk_full']}")
    for name, exact in SUMMARY.get("bit_exact", {}).items():
        lines.append(f"bit-exact final weights against the uninterrupted run ({name}): {'yes' if exact else 'NO'}"
                     + (f", weights {SUMMARY['reference_digest']}" if "reference_digest" in SUMMARY else ""))
    if "driver" in SUMMARY:
        lines.append(f"in-process cases: {SUMMARY['driver']}")
    lines.append(f"runtime: {seconds:.0f} s")
    return lines
