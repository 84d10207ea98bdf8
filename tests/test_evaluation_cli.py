"""End to end: train flags/tiny.cfg, evaluate it with the command line, the in-training hook and a tampered
classifier."""

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from mmali_tf.evaluation import report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--probe_epochs=2", "--classifier_epochs=1", "--num_prior=500", "--batch_size=256"]


def run_module(module, *args):
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("MMALI_CLASSIFIER_DIR", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def train_tiny(workdir):
    """``python -m mmali_tf.train --flagfile=flags/tiny.cfg --workdir=... --noxla``, in this process (saves a
    TensorFlow start-up)."""
    from absl import flags

    from mmali_tf import cli, train, training

    cwd = os.getcwd()
    os.chdir(REPO)  # flags/tiny.cfg names flags/mnist_svhn.cfg relative to the repository root
    try:
        flags.FLAGS(["train", "--flagfile=flags/tiny.cfg", f"--workdir={workdir}", "--noxla"])
        config = cli.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()
        os.chdir(cwd)
    training.run(config, workdir, print_fn=lambda _: None)


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("tiny") / "run")
    train_tiny(workdir)
    evaluated = run_module("mmali_tf.evaluate", f"--workdir={workdir}", *QUICK)
    assert evaluated.returncode == 0, evaluated.stderr
    return workdir, evaluated.stdout


def test_cli_writes_metrics_json_markdown_and_tensorboard(evaluated_run):
    workdir, stdout = evaluated_run
    with open(os.path.join(workdir, "metrics.json")) as f:
        record = json.load(f)
    report.validate_record(record)
    names = ("grey", "colour")
    expected = {"coherence/grey_to_colour", "coherence/colour_to_grey", "coherence/joint", "coherence/joint_chance",
                "synergy/grey", "synergy/colour"} | {f"latent_acc{v}/{n}" for v in ("", "_content", "_style")
                                                     for n in names}
    assert set(record["metrics"]) == expected
    assert record["step"] == 6 and record["checkpoint"].endswith("ckpt-6") and record["protocol"] == "clean"
    assert record["pairing"]["num_pairs"] == 718 and record["pairing"]["data_multiplication"] == 2
    assert record["data"]["grey"]["label"] == "embedded digits (grey28)"
    assert {c["kind"] for c in record["classifiers"].values()} == {"mnist", "svhn"}
    assert all(os.path.exists(c["path"]) for c in record["classifiers"].values())
    assert os.path.dirname(record["classifiers"]["grey"]["path"]) == os.path.join(workdir, "classifiers")
    with open(os.path.join(workdir, "metrics.md")) as f:
        assert "| `coherence/joint` |" in f.read()
    assert "| `coherence/grey_to_colour` |" in stdout  # the table is printed
    assert glob.glob(os.path.join(workdir, "tensorboard", "events.*"))


def test_in_training_hook_reuses_the_classifiers(evaluated_run, monkeypatch):
    from mmali_tf import checkpointing, evaluate
    from mmali_tf.config import ExperimentConfig
    from mmali_tf.model import MMALI

    workdir, _ = evaluated_run
    config = ExperimentConfig.from_json_file(os.path.join(workdir, "config.json"))
    model = MMALI(config)
    checkpointing.restore_ema_only(model, workdir)
    quick = evaluate.EvalOptions(metrics=("joint", "synergy"), probe_epochs=2, num_prior=300, batch_size=256,
                                 train_classifiers=False)
    monkeypatch.setattr(evaluate, "EvalOptions", lambda: quick)
    monkeypatch.delenv("MMALI_CLASSIFIER_DIR", raising=False)
    record = evaluate.evaluate_in_training(model, workdir, 6)
    assert record["step"] == 6 and set(record["metrics"]) == {"coherence/joint", "coherence/joint_chance",
                                                               "synergy/grey", "synergy/colour"}
    assert not any(c["trained_now"] for c in record["classifiers"].values())
    with open(os.path.join(workdir, "metrics_history.jsonl")) as f:
        assert len(f.readlines()) == 2


def test_tampered_classifier_is_refused_with_one_line(evaluated_run, tmp_path):
    """The evaluator loads the classifiers first and refuses a tampered one with one line (the command line
    prints it as ``error: ...``, exit status 1, via flags_common.run_main)."""
    from mmali_tf import evaluate
    from mmali_tf.config import ExperimentConfig
    from mmali_tf.evaluation.classifiers import ClassifierChecksumError

    workdir, _ = evaluated_run
    copy = str(tmp_path / "classifiers")
    shutil.copytree(os.path.join(workdir, "classifiers"), copy)
    weights = sorted(glob.glob(os.path.join(copy, "*.weights.h5")))[0]
    with open(weights, "ab") as f:
        f.write(b"\0")
    config = ExperimentConfig.from_json_file(os.path.join(workdir, "config.json"))
    options = evaluate.EvalOptions(classifier_dir=copy, train_classifiers=False)
    with pytest.raises(ClassifierChecksumError) as err:
        evaluate.load_classifiers(config, options, workdir, print_fn=lambda _: None)
    message = str(err.value)
    assert "\n" not in message and "checksum" in message and os.path.basename(weights) in message


def test_dataclass_defaults_match_the_flags():
    from mmali_tf import evaluate

    defaults = evaluate.EvalOptions()
    assert defaults.probe_epochs == 100 and defaults.num_prior == 10_000 and defaults.protocol == "clean"
    assert dataclasses.replace(defaults, classifier_dir=None).resolved_classifier_dir("/r").startswith(
        os.environ.get("MMALI_CLASSIFIER_DIR") or "/r/classifiers")
