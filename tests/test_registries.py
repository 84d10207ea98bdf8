"""The registries of modality kinds, datasets, joint architectures and metrics are the single source: what is
registered there (a dummy kind, dataset or metric here) is what validation accepts, help texts list, networks are
built from and evaluation runs; everything else is refused with one clear error naming the choices."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mmali_tf import kinds
from mmali_tf.checks import check_registered
from mmali_tf.config import DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig
from mmali_tf.data import datasets
from mmali_tf.data.dataset import INDEX, LABEL, Dataset
from mmali_tf.data.sources import Split
from mmali_tf.errors import ConfigError
from mmali_tf.kinds.mnist import MNISTKind
from mmali_tf.registry import Registry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DummyKind(MNISTKind):
    """An image kind with the MNIST networks under another name, and no classifier."""

    name = "dummy_kind"
    description = "a kind registered by the test"

    def classifier(self):
        return None


def _dummy_load(data_dir, split, **_):
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = np.repeat(np.arange(10), 6)
    return Split(rng.integers(0, 256, (60, 28, 28, 1), dtype=np.uint8), labels, f"dummy/{split}", f"dummy{split}")


DUMMY_DATASET = Dataset(name="dummy_data", description="a dataset registered by the test", load=_dummy_load,
                        examples=kinds.PIXELS, pairing=LABEL, display="Dummy digits")


@pytest.fixture
def registered():
    kinds.KINDS.register(DummyKind())
    datasets.DATASETS.register(DUMMY_DATASET)
    yield
    kinds.KINDS.unregister("dummy_kind")
    datasets.DATASETS.unregister("dummy_data")


def config(*modalities, **model):
    return ExperimentConfig(name="t", data=DataConfig(data_multiplication=1),
                            model=ModelConfig(modalities=tuple(modalities), **model), loss=LossConfig(),
                            train=TrainConfig(batch_size=4, max_iter=1, xla=False))


def test_registry_basics():
    reg = Registry("widget")
    entry = reg.register(DUMMY_DATASET)
    assert entry is DUMMY_DATASET and reg.names() == ("dummy_data",) and "dummy_data" in reg
    with pytest.raises(ConfigError, match="widget 'dummy_data' is already registered"):
        reg.register(DUMMY_DATASET)
    with pytest.raises(ConfigError, match=r"unknown widget 'x'; expected one of dummy_data\."):
        reg.get("x")
    live = reg.live_names()
    reg.unregister("dummy_data")
    assert list(live) == [] and "dummy_data" not in live


def test_builtin_entries():
    assert kinds.KINDS.names() == ("mnist", "svhn", "cub_caption", "cub_image", "vector", "image")
    assert datasets.DATASETS.names() == ("mnist", "svhn", "digits_grey28", "digits_colour32", "cub_caption",
                                         "cub_image", "vector", "image")
    assert {d.name: d.pairing for d in datasets.DATASETS.entries()} == {
        "mnist": LABEL, "svhn": LABEL, "digits_grey28": LABEL, "digits_colour32": LABEL, "cub_caption": INDEX,
        "cub_image": INDEX, "vector": INDEX, "image": INDEX}


def test_a_registered_kind_and_dataset_are_accepted_everywhere(registered):
    from mmali_tf.evaluation import classifiers, metrics
    from mmali_tf.model import MMALI, count_parameters
    from mmali_tf.kinds import builders as registry

    cfg = config(ModalitySpec("a", "dummy_kind", "dummy_data"), ModalitySpec("b", "mnist", "mnist")).validate()
    assert "dummy_kind" in registry.KIND_NAMES and registry.IMAGE_SHAPES["dummy_kind"] == (28, 28, 1)
    assert "dummy_kind" not in classifiers.KINDS  # it has no classifier...
    assert metrics.select(cfg, ("latent", "cross", "joint", "synergy", "correlation"))[1] == {
        "cross": "no coherence classifier for the kind of a", "joint": "no coherence classifier for the kind of a",
        "synergy": "no coherence classifier for the kind of a",
        "correlation": "CCA correlation needs two or more feature modalities"}  # ...so evaluation skips coherence
    with pytest.raises(ConfigError, match="metric 'cross' does not apply to this model: no coherence classifier"):
        metrics.select(cfg, ("cross",), explicit=("cross",))
    model = MMALI(cfg)
    assert count_parameters([model.enc_a]) == count_parameters([model.enc_b]) == 330_040
    assert datasets.data_label("dummy_data", "dummy/test") == "Dummy digits"


def _fresh_process(code: str) -> list[str]:
    """stdout lines of a fresh Python that first registers the dummy kind and dataset, then runs ``code``."""
    script = ("from tests.test_registries import DummyKind, DUMMY_DATASET\n"
              "from mmali_tf import kinds\n"
              "from mmali_tf.data import datasets\n"
              "kinds.KINDS.register(DummyKind()); datasets.DATASETS.register(DUMMY_DATASET)\n"
              "from absl import flags\n" + code)
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()


def test_the_help_texts_list_the_registries():
    """Registered before the command lines are imported, a dummy kind and dataset appear in their help."""
    modalities, option, joint = json.loads(_fresh_process(
        "import json, mmali_tf.train\n"
        "print(json.dumps([flags.FLAGS[n].help for n in ('config.model.modalities', 'modality_option',\n"
        "                                                 'config.model.joint_architecture')]))"
    )[-1])
    datasets_part, kinds_part = modalities.split("kinds (networks):")
    for name in kinds.KINDS.names() + ("dummy_kind",):
        assert f"{name} (" in kinds_part, name
    for name in datasets.DATASETS.names() + ("dummy_data",):
        assert f"{name} (" in datasets_part, name
    assert "vector: feature_dim, encoder_hidden, x_hidden, z_hidden, head_hidden" in option
    assert "image: height, width, channels, base_filters, stages" in option
    assert all(f"{a} (" in joint for a in ("dot", "concat", "feature_concat"))
    metric = json.loads(_fresh_process("import json\nfrom mmali_tf import evaluate\nevaluate.define_flags()\n"
                                       "print(json.dumps(flags.FLAGS['metrics'].help))")[-1])
    assert all(f"{m} (" in metric for m in ("latent", "cross", "joint", "synergy", "correlation"))


def test_a_registered_metric_is_parsed_run_and_reported(registered):
    from mmali_tf.evaluation import metrics, report

    dummy = metrics.Metric(name="dummy_metric", description="registered by the test", applies=lambda cfg: "",
                           run=lambda ctx: {"dummy/score": 0.5}, keys=r"dummy/\w+", value_range=(0.0, 2.0),
                           percent=False, describe=lambda key: "a dummy score")
    metrics.METRICS.register(dummy)
    try:
        assert "dummy_metric" in metrics.parse_metrics(["all"])
        assert "dummy_metric (registered by the test)" in metrics.help_text()
        assert report.METRIC_KEY.match("dummy/score") is dummy
        assert "| `dummy/score` | 0.5000 | a dummy score |" in report.metrics_table({"dummy/score": 0.5})
        record = report.build_record(metrics={"dummy/score": 1.5}, protocol="clean", step=0, checkpoint=None,
                                     workdir="/x", data={}, pairing=None, classifiers={}, settings={}, wall_time=0,
                                     timings={})
        report.validate_record(record)  # 1.5 lies in the metric's own range
        record["metrics"]["dummy/score"] = 2.5
        with pytest.raises(ValueError, match=r"is not a value in \[0, 2\]"):
            report.validate_record(record)
    finally:
        metrics.METRICS.unregister("dummy_metric")
    with pytest.raises(ConfigError, match="unknown metric 'dummy_metric'"):
        metrics.parse_metrics(["dummy_metric"])


@pytest.mark.parametrize("modalities, fragment", [
    ((ModalitySpec("a", "text", "mnist"), ModalitySpec("b", "mnist", "mnist")),
     "unknown network kind 'text' (choose from mnist, svhn, cub_caption, cub_image, vector, image)"),
    ((ModalitySpec("a", "mnist", "cifar"), ModalitySpec("b", "mnist", "mnist")), "unknown dataset 'cifar'"),
    ((ModalitySpec("a", "mnist", "cub_caption"), ModalitySpec("b", "mnist", "mnist")),
     "dataset 'cub_caption' holds features, but kind 'mnist' models pixels"),
    ((ModalitySpec("a", "cub_caption", "cub_caption"), ModalitySpec("b", "mnist", "mnist")),
     "paired by label and datasets paired by row cannot be mixed"),
    ((ModalitySpec("a", "cub_caption", "cub_caption", quarter_turns=1), ModalitySpec("b", "cub_image", "cub_image")),
     "quarter_turns rotate images"),
    ((ModalitySpec("a", "cub_caption", "cub_caption", feature_dim=512), ModalitySpec("b", "cub_image", "cub_image")),
     "kind 'cub_caption' takes no feature_dim"),
    ((ModalitySpec("a", "mnist", "mnist", x_hidden=(8,)), ModalitySpec("b", "mnist", "mnist")),
     "kind 'mnist' takes no x_hidden"),
    ((ModalitySpec("a", "vector", "vector"), ModalitySpec("b", "vector", "vector", feature_dim=8)),
     "kind 'vector' needs the feature size, e.g. --modality_option=a:feature_dim=D"),
    ((ModalitySpec("a", "vector", "vector", feature_dim=8, encoder_hidden=(4, 0)),
      ModalitySpec("b", "vector", "vector", feature_dim=8)), "encoder_hidden must be positive integers"),
])
def test_validation_reads_the_registries(modalities, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_registered(config(*modalities).validate())


def test_joint_architecture_from_its_registry():
    cub = (ModalitySpec("c", "cub_caption", "cub_caption"), ModalitySpec("i", "cub_image", "cub_image"))
    for name in ("dot", "concat", "feature_concat"):
        check_registered(config(*cub, joint_architecture=name).validate())
    with pytest.raises(ConfigError, match="joint_architecture must be one of dot, concat, feature_concat"):
        check_registered(config(*cub, joint_architecture="bilinear").validate())


def test_modality_options():
    specs = (ModalitySpec("t", "vector", "vector"), ModalitySpec("u", "vector", "vector"))
    out = kinds.apply_modality_options(specs, ["t:feature_dim=300", "t:encoder_hidden=64,32", "u:feature_dim=40",
                                               "u:x_hidden=16/8"])
    assert out[0] == dataclasses.replace(specs[0], feature_dim=300, encoder_hidden=(64, 32))
    assert out[1].x_hidden == (16, 8)
    widths = kinds.get("vector").widths(out[0])
    # 300 is not a multiple of 8: the reference's rule rounded down, the given encoder widths kept
    assert (widths.encoder_hidden, widths.x_hidden, widths.z_hidden, widths.head_hidden) == (
        (64, 32), (150, 75, 37, 37), (37, 37), (512,))
    for entry, fragment in (("t:feature_dim", "NAME:KEY=VALUE"), ("v:feature_dim=3", "no modality 'v'"),
                            ("t:quarter_turns=1", "kind 'vector' has no option 'quarter_turns'"),
                            ("t:feature_dim=abc", "feature_dim takes an integer"),
                            ("t:x_hidden=1,x", "x_hidden takes comma-separated integers")):
        with pytest.raises(ConfigError, match=fragment):
            kinds.apply_modality_options(specs, [entry])
    with pytest.raises(ConfigError, match="kind 'mnist' has no option 'feature_dim'.*none"):
        kinds.apply_modality_options((ModalitySpec("m", "mnist", "mnist"),), ["m:feature_dim=3"])


def test_config_json_round_trip_keeps_widths():
    cfg = config(ModalitySpec("t", "vector", "vector", feature_dim=48, encoder_hidden=(24, 12)),
                 ModalitySpec("u", "vector", "vector", feature_dim=64)).validate()
    again = ExperimentConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg and again.model.modalities[0].encoder_hidden == (24, 12)
