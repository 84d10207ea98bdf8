"""One configuration source: presets as code, dotted overrides, flags generated from the dataclasses."""

import dataclasses
import json
import os
import subprocess
import sys
import typing

import pytest
from absl import flags

from mmali_tf import cli, configs
from mmali_tf import config as config_lib
from mmali_tf.config import ExperimentConfig
from mmali_tf.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The authors' README configurations (docs/authors_code.md, section 3), written out independently of the presets.
README_MNIST_SVHN = {"model.latent_dim": 20, "model.style_dim": 10, "model.discriminator": "factorized",
                     "model.joint_architecture": "dot", "loss.lambda_unimodal": 0.1, "loss.lambda_x_rec": 0.05,
                     "loss.lambda_s_rec": 0.05, "loss.lambda_c_rec": 0.05, "loss.joint_rec": True,
                     "data.use_all": True, "data.data_multiplication": 30, "data.percentage": 1.0,
                     "train.batch_size": 64, "train.max_iter": 250_000, "train.lr": 2e-4, "train.beta1": 0.5,
                     "train.beta2": 0.999, "train.epsilon": 1e-8, "train.ema_start": 50_000,
                     "train.ema_decay": 0.9999, "train.save_every": 2000}
README_MULTIMNIST = {"model.latent_dim": 20, "model.style_dim": 10, "model.joint_architecture": "concat",
                     "loss.lambda_unimodal": 0.1, "loss.lambda_x_rec": 0.0, "loss.lambda_s_rec": 0.0,
                     "loss.lambda_c_rec": 0.0, "loss.joint_rec": False, "data.data_multiplication": 30,
                     "train.batch_size": 64, "train.max_iter": 250_000, "train.lr": 2e-4, "train.beta1": 0.5,
                     "train.ema_start": 50_000, "train.save_every": 2000}


def value(config, path):
    for part in path.split("."):
        config = getattr(config, part)
    return config


def assert_matches(config, expected):
    for path, want in expected.items():
        assert value(config, path) == want, path


def test_every_preset_builds_and_validates():
    for name in configs.PRESETS:
        assert isinstance(configs.build(name), ExperimentConfig), name


def test_mnist_svhn_presets_are_the_readme_config():
    for name, paired, unpaired in (("mnist_svhn", 1.0, False), ("mnist_svhn_p20", 0.2, True),
                                   ("mnist_svhn_p20_paired_only", 0.2, False)):
        config = configs.build(name)
        assert_matches(config, {**README_MNIST_SVHN, "data.percentage": paired, "data.unpaired": unpaired})
        assert [(m.name, m.dataset, m.kind) for m in config.model.modalities] == [
            ("mnist", "mnist", "mnist"), ("svhn", "svhn", "svhn")]


@pytest.mark.parametrize("num", [2, 3, 4])
@pytest.mark.parametrize("discriminator", ["factorized", "joint"])
def test_multimnist_presets_are_the_readme_config(num, discriminator):
    config = configs.build(f"multimnist_m{num}" + ("_joint" if discriminator == "joint" else ""))
    assert_matches(config, {**README_MULTIMNIST, "model.discriminator": discriminator})
    assert [m.quarter_turns for m in config.model.modalities] == list(range(num))
    assert {(m.dataset, m.kind) for m in config.model.modalities} == {("mnist", "mnist")}


def test_cub_preset_is_the_readme_config():
    config = configs.build("cub")
    assert_matches(config, {"model.latent_dim": 64, "model.style_dim": 32, "model.joint_architecture": "feature_concat",
                            "loss.lambda_unimodal": 1.0, "loss.lambda_x_rec": 1.0, "loss.lambda_s_rec": 0.0,
                            "loss.lambda_c_rec": 0.0, "loss.joint_rec": False, "train.batch_size": 64,
                            "train.max_iter": 250_000, "train.lr": 2e-4, "train.ema_start": 50_000})
    assert [(m.name, m.kind, m.rec_weight) for m in config.model.modalities] == [
        ("caption", "cub_caption", 1000.0), ("image", "cub_image", 1.0)]  # caption first: the authors' key order


def test_quickstart_is_multimnist_m2_on_embedded_digits_with_the_demo_settings():
    quick, m2 = configs.build("quickstart"), configs.build("multimnist_m2")
    assert quick.loss == m2.loss
    assert dataclasses.replace(quick.model, modalities=m2.model.modalities, joint_architecture="concat") == m2.model
    assert [(m.name, m.dataset, m.kind, m.quarter_turns) for m in quick.model.modalities] == [
        ("upright", "digits_grey28", "mnist", 0), ("rotated", "digits_grey28", "mnist", 1)]
    assert_matches(quick, {"model.joint_architecture": "feature_concat", "train.max_iter": 5000, "train.lr": 5e-4,
                           "train.ema_start": 2000, "train.ema_decay": 0.999, "train.eval_at_end": True})


def test_tiny_is_the_mnist_svhn_model_on_embedded_data():
    tiny, readme = configs.build("tiny"), configs.build("mnist_svhn")
    assert tiny.loss == readme.loss
    assert dataclasses.replace(tiny.model, modalities=readme.model.modalities) == readme.model
    assert [m.dataset for m in tiny.model.modalities] == ["digits_grey28", "digits_colour32"]


def test_presets_are_read_from_the_package_not_the_working_directory(tmp_path):
    script = ("import json; from mmali_tf import configs; "
              "print(json.dumps({n: configs.build(n).to_dict() for n in configs.PRESETS}))")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**os.environ, "PYTHONPATH": REPO},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    built = json.loads(out.stdout.splitlines()[-1])
    assert built == json.loads(json.dumps({n: configs.build(n).to_dict() for n in configs.PRESETS}))


def test_every_field_is_a_setting_with_one_default():
    """Each setting has help text and its default only in the dataclass; the generated flags have none."""
    for section in config_lib.SECTIONS.values():
        fields = dataclasses.fields(section)
        assert [f.name for f in config_lib.settings(section)] == [f.name for f in fields], section
    from mmali_tf import train  # noqa: F401  (defines the flags)

    cli_flags = {name: flag for name, flag in flags.FLAGS.__flags.items() if name.startswith("config.")}
    paths = [f"{s}.{f.name}" for s, c in config_lib.SECTIONS.items() for f in dataclasses.fields(c)] + ["name"]
    assert sorted(cli_flags) == sorted(f"config.{p}" for p in paths)
    for name, flag in cli_flags.items():
        assert flag.default is None, name  # the dataclass holds the default; the flag only overrides it
        section, _, field = name[len("config."):].rpartition(".")
        cls = config_lib.SECTIONS[section] if section else ExperimentConfig
        f = next(f for f in dataclasses.fields(cls) if f.name == field)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert f"(default: {cli._show(default)})" in flag.help, name


def test_the_entry_point_defines_no_other_hyperparameter_flags():
    from mmali_tf import train  # noqa: F401  (defines its flags)

    own = {name for name, flag in flags.FLAGS.__flags.items()
           if getattr(flags.FLAGS, "find_module_defining_flag", None)
           and flags.FLAGS.find_module_defining_flag(name) == "mmali_tf.train"}
    assert own <= {"workdir"}, own


def test_dotted_and_short_overrides():
    base = configs.build("multimnist_m2")
    config = configs.build("multimnist_m2", {"train.max_iter": "3000", "loss.lambda_unimodal": 0.5,
                                             "model.modalities": ["a:mnist:mnist", "b:mnist:mnist:quarter_turns=1"],
                                             "train.xla": "auto", "data.extra_unpaired": "a:all"})
    assert config.train.max_iter == 3000 and config.loss.lambda_unimodal == 0.5
    assert [(m.name, m.quarter_turns) for m in config.model.modalities] == [("a", 0), ("b", 1)]
    assert config.train.xla is None and config.data.extra_unpaired == (("a", -1),)
    assert config.replace(train=dict(max_iter=base.train.max_iter), loss=dict(lambda_unimodal=0.1),
                          model=dict(modalities=base.model.modalities), data=dict(extra_unpaired=())) == base


@pytest.mark.parametrize("overrides, fragment", [
    ({"train.bogus": 1}, "unknown setting"), ({"train.max_iter": "many"}, "train.max_iter"),
    ({"train.max_iter": 0}, "max_iter"), ({"model.discriminator": "both"}, "discriminator"),
    ({"model.modalities": ["a:mnist"]}, "modalities"), ({"model.modalities": ["a:mnist:mnist:color=red"]}, "color"),
    ({"data.percentage": 1.5}, "paired_fraction"), ({"model.style_dim": 30}, "style_dim")])
def test_bad_overrides_name_the_setting(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        configs.build("tiny", overrides)


def test_a_users_config_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("from mmali_tf import configs\n\ndef get_config():\n"
                    "    return configs.get('multimnist_m3').replace(name='mine', train=dict(max_iter=7))\n")
    config = configs.build(str(path))
    assert config.name == "mine" and config.train.max_iter == 7 and len(config.model.modalities) == 3
    (tmp_path / "broken.py").write_text("def get_config(:\n")
    with pytest.raises(ConfigError, match="broken.py failed to load"):
        configs.build(str(tmp_path / "broken.py"))
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="no get_config"):
        configs.build(str(tmp_path / "empty.py"))
    with pytest.raises(ConfigError, match="unknown config"):
        configs.build("no_such_preset")


def test_flagfiles_are_the_presets(monkeypatch):
    """flags/<name>.cfg (kept for existing users) gives exactly the preset <name>; old flat flags still apply."""
    from mmali_tf import train  # noqa: F401

    monkeypatch.chdir(REPO)
    for name in configs.PRESETS:
        if name == "defaults":
            continue
        try:
            flags.FLAGS(["prog", f"--flagfile=flags/{name}.cfg", "--max_iter=5", "--nojoint_rec"])
            got = cli.config_from_flags()
        finally:
            flags.FLAGS.unparse_flags()
        assert got == configs.build(name, {"train.max_iter": 5, "loss.joint_rec": False}), name


def test_dry_run_prints_the_resolved_config_from_any_directory(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mmali_tf.train", "--config=multimnist_m3",
                          "--config.train.max_iter=11", "--dry_run"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    printed = ExperimentConfig.from_dict(json.loads(out.stdout))
    assert printed.train.max_iter == 11 and len(printed.model.modalities) == 3
    assert printed.train.xla is not None and printed.train.intra_op_threads >= 0  # "auto" resolved
    assert not list(tmp_path.iterdir())  # nothing written


def test_types_of_the_generated_flags():
    hints = typing.get_type_hints(config_lib.TrainConfig)
    assert hints["xla"] == bool | None
