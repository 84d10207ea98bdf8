"""Experiment presets as code: each is a function returning the typed config (``get_config()``).

``get(spec)`` takes a preset name (``PRESETS``) or the path of a Python file defining ``get_config()``;
:func:`build` then applies dotted overrides (``{"train.max_iter": 3000}``, values typed or as command-line text)
and validates. Every entry point and tool builds its config through :func:`build`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Mapping

from mmali_tf.config import ExperimentConfig, apply_overrides
from mmali_tf.configs import cub, mnist_svhn, multimnist, quickstart
from mmali_tf.errors import ConfigError

PRESETS: dict[str, Callable[[], ExperimentConfig]] = {
    "defaults": ExperimentConfig,
    "quickstart": quickstart.get_config,
    "tiny": quickstart.tiny,
    "mnist_svhn": mnist_svhn.get_config,
    "mnist_svhn_p20": functools.partial(mnist_svhn.get_config, 0.2, True, "mnist_svhn_p20"),
    "mnist_svhn_p20_paired_only": functools.partial(mnist_svhn.get_config, 0.2, False, "mnist_svhn_p20_paired_only"),
    "multimnist_m2": functools.partial(multimnist.get_config, 2),
    "multimnist_m3": functools.partial(multimnist.get_config, 3),
    "multimnist_m4": functools.partial(multimnist.get_config, 4),
    "multimnist_m2_joint": functools.partial(multimnist.get_config, 2, "joint"),
    "multimnist_m3_joint": functools.partial(multimnist.get_config, 3, "joint"),
    "multimnist_m4_joint": functools.partial(multimnist.get_config, 4, "joint"),
    "multimnist_m2_joint_both_batches": functools.partial(multimnist.get_config, 2, "joint", True),
    "multimnist_m3_joint_both_batches": functools.partial(multimnist.get_config, 3, "joint", True),
    "multimnist_m4_joint_both_batches": functools.partial(multimnist.get_config, 4, "joint", True),
    "cub": cub.get_config,
}
"""Preset name -> function returning its config. A new preset is its module (or a function) plus one line here."""


def get(spec: str) -> ExperimentConfig:
    """The config of a preset name, or of ``get_config()`` in the Python file ``spec`` (ends in ``.py``)."""
    if spec.endswith(".py"):
        return _from_file(spec)
    if spec not in PRESETS:
        raise ConfigError(f"unknown config {spec!r}: a preset ({', '.join(PRESETS)}) or a path to a .py file")
    return PRESETS[spec]()


def _from_file(path: str) -> ExperimentConfig:
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist")
    module_spec = importlib.util.spec_from_file_location("mmali_user_config", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: any error it raises is reported in one line
        raise ConfigError(f"config file {path} failed to load: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"config file {path} defines no get_config()")
    config = module.get_config()
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"get_config() in {path} returned {type(config).__name__}, not an ExperimentConfig")
    return config


def build(spec: str = "defaults", overrides: Mapping[str, object] | None = None) -> ExperimentConfig:
    """The preset (or file) ``spec`` with dotted ``overrides`` applied, validated (values only: registry names are
    checked where a run starts, :func:`mmali_tf.checks.check_registered`)."""
    return apply_overrides(get(spec), overrides or {}).validate()
