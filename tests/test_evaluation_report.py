"""metrics.json schema, Markdown table, TensorBoard scalars, metric-name parsing."""

import copy
import glob
import json
import os

import pytest
import tensorflow as tf

from mmali_tf import evaluate
from mmali_tf.errors import ConfigError
from mmali_tf.evaluation import report

METRICS = {"coherence/mnist_to_svhn": 0.5, "coherence/svhn_to_mnist": 0.25, "coherence/joint": 0.125,
           "coherence/joint_chance": 0.1,
           "synergy/mnist": 0.75, "synergy/svhn": 0.5, "latent_acc/mnist": 0.9, "latent_acc_content/mnist": 0.95,
           "latent_acc_style/mnist": 0.2, "latent_acc_max/mnist": 0.91}


def sample_record(**overrides):
    data = {"svhn": {"dataset": "svhn", "kind": "svhn", "quarter_turns": 0,
                     "label": report.data_label("svhn", "svhn stand-in (synthetic, not genuine SVHN)/test from x"),
                     "test": {"source": "svhn stand-in ...", "fingerprint": "abc", "size": 26032}}}
    classifiers = {"svhn": {"kind": "svhn", "dataset": "svhn", "protocol": "clean", "sha256": "0" * 64,
                            "test_accuracy": 0.9, "epochs": 10, "selected_epoch": 9, "path": "/x/svhn.weights.h5",
                            "selection": "held-out"}}
    record = report.build_record(metrics=METRICS, protocol="clean", step=4000, checkpoint="/x/ckpt-2", workdir="/x",
                                 data=data, pairing={"summary": "300,000 pairs", "seed": 1}, classifiers=classifiers,
                                 settings={"seed": 0}, wall_time=12.34, timings={"joint": 1.0})
    record.update(overrides)
    return record


def test_record_round_trips_through_json_and_validates():
    record = json.loads(json.dumps(sample_record()))
    report.validate_record(record)
    assert record["schema"] == report.SCHEMA and record["step"] == 4000
    assert record["data"]["svhn"]["label"] == "SVHN stand-in"
    assert list(record["metrics"]) == sorted(METRICS)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda r: r.pop("step"), "missing field 'step'"),
    (lambda r: r.update(protocol="sloppy"), "protocol"),
    (lambda r: r["metrics"].update({"coherence/x": 1.5}), "not a fraction"),
    (lambda r: r["metrics"].update({"accuracy": 0.5}), "key pattern"),
    (lambda r: r["classifiers"]["svhn"].pop("sha256"), "lacks 'sha256'"),
    (lambda r: r["data"]["svhn"].pop("label"), "lacks 'label'"),
    (lambda r: r.update(step="4000"), "'step' has type str"),
])
def test_schema_violations_are_reported(mutate, fragment):
    record = copy.deepcopy(sample_record())
    mutate(record)
    with pytest.raises(ValueError, match=fragment):
        report.validate_record(record)


def test_metric_keys_are_stable():
    for key in METRICS:
        assert report.METRIC_KEY.match(key)
    assert report.data_label("mnist", "mnist/test from /d/mnist.npz") == "MNIST"
    assert report.data_label("svhn", "svhn/test from /d/test_32x32.mat") == "SVHN"
    # A directory name is not a data origin: genuine MNIST stored next to the stand-in stays MNIST.
    assert report.data_label("mnist", "mnist/test from /data/mnist_svhn_standin/mnist.npz") == "MNIST"
    assert report.data_label("svhn", "svhn stand-in (synthetic, not genuine SVHN)/test from /s/test_32x32.mat") == \
        "SVHN stand-in"


def test_markdown_table_lists_every_metric():
    text = report.markdown(sample_record())
    for key, value in METRICS.items():
        assert f"| `{key}` | {100 * value:.2f}% |" in text
    assert "SVHN stand-in" in text and "step 4,000" in text
    assert text.index("coherence/mnist_to_svhn") < text.index("latent_acc/mnist")


def test_write_outputs_and_tensorboard(tmp_path):
    workdir = str(tmp_path)
    paths = report.write_outputs(sample_record(), workdir)
    report.write_outputs(sample_record(protocol="reference", step=6000), workdir)
    with open(paths["json"]) as f:
        report.validate_record(json.load(f))
    assert os.path.exists(os.path.join(workdir, "metrics.md"))
    assert os.path.exists(os.path.join(workdir, "metrics_reference.json"))
    with open(paths["history"]) as f:
        assert [json.loads(line)["step"] for line in f] == [4000, 6000]
    seen = {}
    for path in glob.glob(os.path.join(workdir, "tensorboard", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                seen[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    assert seen[("coherence/joint", 4000)] == pytest.approx(0.125)
    assert seen[("coherence_reference/joint", 6000)] == pytest.approx(0.125)
    assert seen[("latent_acc/mnist", 4000)] == pytest.approx(0.9)


def test_metric_groups_parse():
    assert evaluate.parse_metrics(["latent", "coherence"]) == ("latent", "cross", "joint", "synergy")
    assert evaluate.parse_metrics(["joint"]) == ("joint",)
    assert evaluate.parse_metrics(["all"]) == evaluate.METRIC_GROUPS
    with pytest.raises(ConfigError, match="unknown metric"):
        evaluate.parse_metrics(["fid"])
