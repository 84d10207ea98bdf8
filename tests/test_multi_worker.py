"""Multi-worker training with real worker processes on 127.0.0.1 (``python -m mmali_tf.launch``), and
MirroredStrategy over 2 logical CPU devices, against single-process runs of the same config.

The model is the tiny config's objective on two MLP (MNIST-kind) modalities of the embedded digits, so that the
worker processes start and trace quickly. Tolerances: a 2-replica step averages two half-batch means where one
replica takes one mean, and sums gradients in another order; over a few steps of Adam that moves weights by float32
rounding, amplified where a gradient element is near Adam's eps (docs/objective.md, section 9).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO}
MODEL = ["--config=tiny", "--modalities=a:digits_grey28:mnist,b:digits_grey28:mnist:1", "--joint_architecture=concat",
         "--nojoint_rec", "--lambda_x_rec=0", "--lambda_s_rec=0", "--lambda_c_rec=0", "--image_every=1000",
         "--log_every=1", "--save_every=3", "--deterministic"]
STEPS = 6
# Parity, 2 replicas against 1 (measured: BUILD.md, "Distributed training and XLA"). A 2-replica step averages two
# half-batch means where one replica takes one mean and sums gradients in another order, so gradients agree to
# float32 rounding; Adam's first updates, lr g / (|g| + eps), then move elements whose gradient is within rounding of
# zero by up to lr either way (docs/objective.md, section 9), and later steps compound that in the discriminators.
GRAD_RTOL = 1e-5  # x max|g| of the tensor, per element, after one step
TINY_GRADIENT = 1e-6  # = 100 x Adam's eps: only elements with |g| below it may take a visibly different first update
G_ATOL = 1e-4  # generators and their EMA after the few-step run
D_MOVEMENT_RTOL = 0.1  # discriminators: |w2 - w1| / |w1 - w0| (the difference against how far training moved them)


def restored(workdir, step=STEPS):
    """The model of a run directory at ``step`` (live, EMA, both optimizers)."""
    from mmali_tf import checkpointing, training
    from mmali_tf.config import ExperimentConfig

    config = ExperimentConfig.from_json_file(str(workdir / "config.json")).replace(train=dict(strategy="default"))
    model = training.build_model(config)
    checkpointing.restore(checkpointing.make_checkpoint(model), str(workdir / "checkpoints" / f"ckpt-{step}"))
    return model


def initial(workdir):
    from mmali_tf import training
    from mmali_tf.config import ExperimentConfig

    return training.build_model(ExperimentConfig.from_json_file(str(workdir / "config.json")).replace(
        train=dict(strategy="default")))


def values(variables):
    return [v.numpy().astype(np.float64) for v in variables]


def assert_parity(ours_dir, reference_dir) -> None:
    ours, reference, start = restored(ours_dir), restored(reference_dir), initial(reference_dir)
    for a, b in zip(values(ours.g_variables + [v for n in ours.ema_encoders.values() for v in n.weights]),
                    values(reference.g_variables + [v for n in reference.ema_encoders.values() for v in n.weights])):
        assert float(np.abs(a - b).max()) <= G_ATOL
    d1, d2, d0 = values(reference.d_variables), values(ours.d_variables), values(start.d_variables)
    difference = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(d1, d2)))
    movement = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(d1, d0)))
    assert difference <= D_MOVEMENT_RTOL * movement, (difference, movement)


def train_cmd(workdir, *extra):
    return [sys.executable, "-m", "mmali_tf.train", *MODEL, f"--workdir={workdir}", f"--max_iter={STEPS}", *extra]


def launch_cmd(workdir, *extra, workers=2):
    return [sys.executable, "-m", "mmali_tf.launch", f"--workers={workers}", "--", *MODEL, f"--workdir={workdir}",
            f"--max_iter={STEPS}", *extra]


def run(cmd, timeout=900, env=ENV):
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def digests(output: str) -> list[str]:
    return re.findall(r"done: step \d+, .*weights ([0-9a-f]{16})", output)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("single") / "run"
    result = run(train_cmd(workdir))
    assert result.returncode == 0, result.stderr
    return workdir


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("two") / "run"
    result = run(launch_cmd(workdir))
    assert result.returncode == 0, result.stdout[-3000:]
    return workdir, result.stdout


def test_two_workers_one_writer_same_weights(two_workers, single):
    workdir, output = two_workers
    assert "worker 0 of 2 workers (chief" in output and "worker 1 of 2 workers (computes only" in output
    # Both workers end bit for bit equal.
    found = digests(output)
    assert len(found) == 2 and found[0] == found[1], output[-2000:]
    # The run directory has exactly one writer's files.
    assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json", "data_fingerprints.json", "samples",
                                           "tensorboard"]
    assert sorted(os.listdir(workdir / "checkpoints")) == [
        "checkpoint", "ckpt-3.data-00000-of-00001", "ckpt-3.index", "ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    assert len(os.listdir(workdir / "tensorboard")) == 1
    assert "[worker 1] step" not in output  # progress comes from the chief only
    # ... and the weights of the 1-worker run with the same global batch.
    assert_parity(workdir, single)


def test_kill_a_worker_and_resume(two_workers, tmp_path):
    """kill -9 worker 1 after the first checkpoint: the chief stops with one error line; rerunning the same command
    resumes from the checkpoint and ends with the uninterrupted run's weights."""
    workdir = tmp_path / "run"
    process = subprocess.Popen(launch_cmd(workdir, "--max_iter=1000"), cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    pids, lines = {}, []
    for line in process.stdout:
        lines.append(line)
        match = re.match(r"\[launch\] worker (\d) \(pid (\d+)\)", line)
        if match:
            pids[int(match.group(1))] = int(match.group(2))
        if "saved checkpoint" in line and "ckpt-3" in line:
            os.kill(pids[1], signal.SIGKILL)
            break
    rest, _ = process.communicate(timeout=600)
    lines.append(rest)
    output = "".join(lines)
    assert process.returncode != 0
    errors = [line for line in output.splitlines() if line.startswith("[worker 0] error:")]
    assert len(errors) == 1 and "lost contact with the other workers" in errors[0], output[-2000:]
    assert "ckpt-3" in errors[0]
    resumed = run(launch_cmd(workdir))
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert "resumed from" in resumed.stdout
    assert digests(resumed.stdout) == digests(two_workers[1])  # bit for bit the uninterrupted run


def test_sigterm_saves_the_current_step_on_every_worker(tmp_path):
    workdir = tmp_path / "run"
    process = subprocess.Popen(launch_cmd(workdir, "--max_iter=1000", "--save_every=500"), cwd=REPO, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids, lines = {}, []
    for line in process.stdout:
        lines.append(line)
        match = re.match(r"\[launch\] worker (\d) \(pid (\d+)\)", line)
        if match:
            pids[int(match.group(1))] = int(match.group(2))
        if line.startswith("[worker 0] step 4/"):
            os.kill(pids[1], signal.SIGTERM)  # the way a cluster preempts a worker
            break
    rest, _ = process.communicate(timeout=600)
    output = "".join(lines) + rest
    assert process.returncode == 143, output[-2000:]
    stopped = re.findall(r"\[worker (\d)\] stopped by SIGTERM at step (\d+); checkpoint (\S+); resume with", output)
    assert sorted(w for w, _, _ in stopped) == ["0", "1"], output[-2000:]
    steps = {int(s) for _, s, _ in stopped}
    assert len(steps) == 1 and steps.pop() >= 4
    chief_checkpoint = next(c for w, _, c in stopped if w == "0")
    assert os.path.exists(chief_checkpoint + ".index")
    assert chief_checkpoint.startswith(str(workdir))


def test_mirrored_strategy_on_two_logical_devices_matches_one_device(single, tmp_path):
    workdir = tmp_path / "run"
    result = run(train_cmd(workdir, "--strategy=mirrored", "--num_devices=2"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 replica(s)" in result.stdout
    assert_parity(workdir, single)


def test_one_step_parity_on_two_logical_devices(tmp_path):
    """After ONE step the 2-replica gradients (Adam's first moments, exactly (1 - beta_1) g) equal the 1-replica ones
    to float32 rounding, and the weights differ only where the gradient is within rounding of zero."""
    runs = {}
    for name, extra in (("one", ()), ("two", ("--strategy=mirrored", "--num_devices=2"))):
        out = run(train_cmd(tmp_path / name, "--max_iter=1", "--save_every=1", *extra))
        assert out.returncode == 0, out.stderr[-2000:]
        runs[name] = restored(tmp_path / name, step=1)
    one, two = runs["one"], runs["two"]
    for optimizer_1, optimizer_2, variables_1, variables_2 in (
            (one.d_optimizer, two.d_optimizer, one.d_variables, two.d_variables),
            (one.g_optimizer, two.g_optimizer, one.g_variables, two.g_variables)):
        for v1, v2 in zip(variables_1, variables_2):
            g1 = optimizer_1.first_moment(v1).numpy() / (1 - optimizer_1.beta_1)
            g2 = optimizer_2.first_moment(v2).numpy() / (1 - optimizer_2.beta_1)
            scale = float(np.abs(g1).max())
            assert float(np.abs(g1 - g2).max()) <= GRAD_RTOL * scale + 1e-12, v1.path
            moved_apart = np.abs(v1.numpy() - v2.numpy()) > 1e-7
            assert np.all(np.abs(g1[moved_apart]) <= TINY_GRADIENT), v1.path


@pytest.mark.parametrize("tf_config, fragment", [
    ("{not json", "malformed TF_CONFIG"),
    (json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}}), "malformed TF_CONFIG"),
    (json.dumps({"cluster": {"worker": ["127.0.0.1:1", "nohost"]}, "task": {"type": "worker", "index": 0}}),
     "host:port"),
    (json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}), "not in the cluster"),
    (None, "needs the TF_CONFIG"),
])
def test_bad_tf_config_is_one_line_and_writes_nothing(tmp_path, tf_config, fragment):
    env = {k: v for k, v in ENV.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    result = run(train_cmd(tmp_path / "run", "--strategy=multi_worker"), env=env, timeout=300)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and fragment in lines[-1], result.stderr
    assert not (tmp_path / "run").exists()


def test_a_worker_alone_times_out_and_writes_nothing(tmp_path):
    env = {**ENV, "TF_CONFIG": json.dumps({"cluster": {"worker": ["127.0.0.1:23811", "127.0.0.1:23812"]},
                                           "task": {"type": "worker", "index": 0}})}
    started = time.perf_counter()
    result = run(train_cmd(tmp_path / "run", "--strategy=multi_worker", "--cluster_timeout=15"), env=env,
                 timeout=300)
    assert result.returncode != 0 and time.perf_counter() - started < 120  # killed by its watchdog
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: ") and "could not reach the other workers" in last and "15 s" in last
    assert not (tmp_path / "run").exists()


def test_workers_with_different_configs_refuse_and_write_nothing(tmp_path):
    addresses = ["127.0.0.1:23821", "127.0.0.1:23822"]
    processes = []
    for index, latent in enumerate((20, 16)):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": {"worker": addresses},
                                               "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            train_cmd(tmp_path / "run", "--strategy=multi_worker", f"--latent_dim={latent}", "--style_dim=8"),
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 1
        last = [line for line in stderr.splitlines() if line.strip()][-1]
        assert last.startswith("error: ") and "disagree on the config" in last, stderr
    assert not (tmp_path / "run").exists()
