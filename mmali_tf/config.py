"""Typed, immutable experiment configuration.

Every setting has its one default and its help text here (:func:`setting`); the presets in
:mod:`mmali_tf.configs` build on these defaults, and :mod:`mmali_tf.cli` generates the command-line flags from
them. Library code only ever sees an :class:`ExperimentConfig`. The resolved config is written to
``<workdir>/config.json`` and read back by evaluation and export. :func:`apply_overrides` replaces settings named by
their dotted paths (``{"train.max_iter": "3000"}``), typed or as command-line text.

This module imports only the standard library and :mod:`mmali_tf.errors`: building and validating a config costs no
TensorFlow start-up. Registry names (kinds, datasets, joint architectures) are checked by :mod:`mmali_tf.checks`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any

from mmali_tf.errors import ConfigError

SPECTRAL_NORM_UPDATES = ("per_step", "per_forward")
PRECISIONS = ("auto", "fp32", "bf16")


def setting(default, help: str, *, flag: str | None = None, lower=None, upper=None,
            choices: tuple | None = None):
    """A config field with its one default and its command-line description.

    ``flag`` is the short command-line name (default: the field's name), the only one besides the dotted path;
    ``lower`` / ``upper`` / ``choices`` are checked by :meth:`ExperimentConfig.validate`. ``mmali_tf.cli`` turns
    every such field into a ``--config.<section>.<field>`` flag with that short name as an alias.
    """
    metadata = {"help": help, "flag": flag, "lower": lower, "upper": upper, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class ModalitySpec:
    """One modality, addressed by name everywhere (never by position).

    ``kind`` names an entry of the modality-kind registry (:mod:`mmali_tf.kinds`), ``dataset`` one of the dataset
    registry (:mod:`mmali_tf.data.datasets`); the kind decides which of the optional fields it reads (the others
    must keep their defaults, which the kind checks).
    """

    name: str  # e.g. "mnist", "svhn", "mnist_rot90", "caption"
    kind: str  # network family, e.g. "mnist" (28x28x1 MLPs), "svhn" (32x32x3 convnets), "cub_caption", "vector"
    dataset: str  # data source registered in mmali_tf.data.datasets
    quarter_turns: int = 0  # counter-clockwise 90-degree rotations applied to the images (MultiMNIST)
    rec_weight: float = 1.0  # the authors' per-modality `mod_coeff` on reconstruction terms
    # Feature-vector kinds whose size is not fixed ("vector"): the feature size and the MLP widths (() = the
    # kind's default rule, networks/features.py FeatureWidths).
    feature_dim: int = 0
    encoder_hidden: tuple[int, ...] = ()
    x_hidden: tuple[int, ...] = ()
    z_hidden: tuple[int, ...] = ()
    head_hidden: tuple[int, ...] = ()
    # Image kinds whose size is not fixed ("image"): the image size and channel count (0 = not given), and the
    # convolutional family's overrides (0 = derived from the size, networks/image.py ConvLayout).
    height: int = 0
    width: int = 0
    channels: int = 0
    base_filters: int = 0
    stages: int = 0

    def __post_init__(self):
        for key in ("encoder_hidden", "x_hidden", "z_hidden", "head_hidden"):  # JSON gives lists
            value = getattr(self, key)
            if isinstance(value, list):
                object.__setattr__(self, key, tuple(value))


MNIST_SVHN = (ModalitySpec("mnist", kind="mnist", dataset="mnist"), ModalitySpec("svhn", kind="svhn", dataset="svhn"))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data_dir: str | None = setting(None, "Directory with raw data files (mnist.npz or IDX, SVHN *_32x32.mat); "
                                         "unset: embedded or TFDS data only.")
    tfds_data_dir: str | None = setting(None, "TFDS data directory to read prepared datasets from.")
    download: bool = setting(False, "Let TFDS download missing datasets (needs internet).")
    data_multiplication: int = setting(30, "Pairing repetitions per image (the authors' dm).", lower=1)
    max_d: int = setting(10000, "Per-class cap when not use_all.", lower=1)
    use_all: bool = setting(True, "The authors' --use_all pairing mode (docs/authors_code.md, section 1.2).")
    percentage: float = setting(1.0, "Fraction of each class that is paired (the authors' --percentage).",
                                flag="paired_fraction", lower=0.0, upper=1.0)
    seed: int = setting(0, "Seed of the pairing and of the batch order.", flag="pairing_seed", lower=0)
    unpaired: bool = setting(False, "Train the unimodal terms on per-modality pools of paired + unpaired images and "
                                    "draw the joint critic's negatives from them; off = the authors' code (paired "
                                    "batches only, docs/authors_code.md section 1.3).")
    extra_unpaired: tuple[tuple[str, int], ...] = setting(
        (), "Per-modality limits on unpaired images, name:count or name:all (default all of them), e.g. "
            "mnist:all,svhn:10000.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    modalities: tuple[ModalitySpec, ...] = setting(
        MNIST_SVHN, "Modalities as name:dataset:kind[:quarter_turns[:rec_weight]] (or key=value parts for any "
                    "modality field).")
    latent_dim: int = setting(20, "Latent size (style + content).", lower=1)
    style_dim: int = setting(10, "Style (private) part of the latent, the first coordinates.", lower=0)
    discriminator: str = setting("factorized", "MMALI's factorized discriminators or the single (M+1)-way joint "
                                               "baseline (docs/objective.md section 6).",
                                 choices=("factorized", "joint"))
    joint_architecture: str = setting("dot", "The q(X) vs prod q(x_m) critic (registered in networks/registry.py): dot "
                                             "(MNIST-SVHN, 2 modalities), concat (MultiMNIST), feature_concat (CUB).")
    spectral_norm_updates: str = setting(
        "per_forward", "Spectral-norm power iterations: per_forward = one before every forward of a discriminator, "
                       "as the authors' code (several per player step; each tuple meets its own estimate); "
                       "per_step = one per discriminator layer and player step, a speed device that learns "
                       "cross-modal coherence more slowly at equal budget (docs/objective.md section 8).",
        choices=SPECTRAL_NORM_UPDATES)

    @property
    def content_dim(self) -> int:
        return self.latent_dim - self.style_dim

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    lambda_unimodal: float = setting(1.0, "Weight of the unimodal adversarial generator terms (the authors' default; "
                                          "their README configs use 0.1 for MNIST-SVHN and MultiMNIST, 1.0 for CUB).",
                                     lower=0.0)
    lambda_x_rec: float = setting(0.0, "Reconstruction weight.", lower=0.0)
    lambda_s_rec: float = setting(0.0, "Style cycle weight.", lower=0.0)
    lambda_c_rec: float = setting(0.0, "Content cycle weight.", lower=0.0)
    joint_rec: bool = setting(False, "Reconstruction and content cycle through the geometric-mean joint posterior.")
    discard_first_baseline_call: bool = setting(
        False, "Joint baseline only: drop the first batch's terms as the authors' code does (their two calls return "
               "the same dict keys); the call still runs. Off = both batches count.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = setting(64, "Global batch of each of the 4 paired batches per iteration.", lower=1)
    max_iter: int = setting(250_000, "Training iterations (D step + G step).", lower=1)
    lr: float = setting(2e-4, "Adam learning rate.", lower=0.0)
    beta1: float = setting(0.5, "Adam beta1.", lower=0.0, upper=1.0)
    beta2: float = setting(0.999, "Adam beta2.", lower=0.0, upper=1.0)
    epsilon: float = setting(1e-8, "Adam epsilon (torch's default, added as torch adds it).", lower=0.0)
    ema_start: int = setting(50_000, "The EMA is a copy of the generators up to and including this iteration.",
                             lower=0)
    ema_decay: float = setting(0.9999, "EMA decay after ema_start.", lower=0.0, upper=1.0)
    seed: int = setting(0, "Seed of the weight initialisation and of the training noise.", lower=0)
    save_every: int = setting(2000, "Checkpoint interval (iterations).", lower=1)
    log_every: int = setting(100, "Console and TensorBoard scalar interval (iterations).", lower=1)
    image_every: int = setting(2000, "Image-grid interval (iterations).", lower=1)
    eval_every: int = setting(0, "Evaluation interval (iterations); 0 = never during training.", lower=0)
    eval_at_end: bool = setting(False, "Evaluate the final model.")
    keep_checkpoints: int = setting(3, "Checkpoints to keep.", lower=1)
    keep_steps: tuple[int, ...] = setting((), "Steps whose checkpoints are saved and kept for good, besides the newest "
                                              "keep_checkpoints (in checkpoints/kept/; e.g. for learning curves).")
    xla: bool | None = setting(None, "Compile the training step with XLA; unset = auto: on with a GPU or TPU, off on "
                                     "a CPU-only machine, where oneDNN's kernels are faster.")
    strategy: str = setting("default", "tf.distribute strategy.", choices=("default", "mirrored", "multi_worker"))
    num_devices: int = setting(1, "Replicas for strategy=mirrored (logical CPUs without GPUs).", lower=1)
    cluster_timeout: int = setting(300, "strategy=multi_worker: seconds to wait for every worker of TF_CONFIG at "
                                        "start-up before giving up.", lower=1)
    collective_timeout: int = setting(0, "strategy=multi_worker: seconds one collective operation may wait for "
                                         "the other workers (a hung worker) before the run stops; 0 = no limit. "
                                         "TensorFlow keeps a thread per timed collective for this long, so a limit "
                                         "suits short runs only (a crashed worker is found by heartbeats anyway).",
                                      lower=0)
    steps_per_execution: int = setting(1, "Training steps per tf.function call.", lower=1)
    intra_op_threads: int = setting(-1, "Threads inside one TensorFlow op; 0 = TensorFlow's default, -1 = auto "
                                        "(CPU-only without XLA: half the cores; else the default).", lower=-1)
    inter_op_threads: int = setting(-1, "TensorFlow ops run side by side; 0 = TensorFlow's default, -1 = auto "
                                        "(CPU-only without XLA: 2; else the default).", lower=-1)
    deterministic: bool = setting(False, "Enable TF op determinism (slower).")
    precision: str = setting("auto", "Compute dtype of the networks: fp32, or bf16 (Keras mixed_bfloat16: variables, "
                                     "optimizer state, spectral-norm power iterations, losses and EMA stay float32); "
                                     "auto = bf16 only where it was measured faster with the metrics kept "
                                     "(BUILD.md, 'Mixed precision'), else fp32.", choices=PRECISIONS)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    name: str = setting("mmali", "Experiment name recorded in the config.")
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def replace(self, **sections) -> "ExperimentConfig":
        """A copy with some fields of sections replaced: ``cfg.replace(train=dict(max_iter=10), name="x")``."""
        changes = {}
        for key, value in sections.items():
            current = getattr(self, key)
            changes[key] = dataclasses.replace(current, **value) if isinstance(value, dict) else value
        return dataclasses.replace(self, **changes)

    def validate(self) -> "ExperimentConfig":
        """``self`` if every value is in range and consistent, else ``ConfigError`` naming the setting.

        Values only: whether the kinds, datasets and joint architecture it names are registered is checked by
        :func:`mmali_tf.checks.check_registered` where a run starts, so validating imports nothing beyond this
        module.
        """
        for section in (self, self.data, self.model, self.loss, self.train):
            _check_settings(section)
        m, t, d = self.model, self.train, self.data
        names = m.names
        if len(names) < 2:
            raise ConfigError(f"need at least 2 modalities, got {list(names)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"modality names must be unique, got {list(names)}")
        if not 0 <= m.style_dim < m.latent_dim:
            raise ConfigError(f"style_dim must be in [0, latent_dim), got style_dim={m.style_dim} latent_dim={m.latent_dim}")
        if m.joint_architecture == "dot" and len(names) != 2 and m.discriminator == "factorized":
            raise ConfigError("the 'dot' joint discriminator needs exactly 2 modalities; use 'concat'")
        for name, count in d.extra_unpaired:
            if name not in names or count < -1:
                raise ConfigError(f"extra_unpaired entry {name}:{count}: unknown modality or count < -1")
        if d.percentage <= 0.0:
            raise ConfigError(f"percentage must be in (0, 1], got {d.percentage}")
        if t.ema_decay >= 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {t.ema_decay}")
        if t.lr <= 0:
            raise ConfigError(f"lr must be positive, got {t.lr}")
        if t.batch_size % t.num_devices:
            raise ConfigError(f"batch_size {t.batch_size} must be divisible by num_devices {t.num_devices}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ExperimentConfig":
        try:
            model = dict(raw["model"])
            model["modalities"] = tuple(ModalitySpec(**spec) for spec in model["modalities"])
            data = dict(raw["data"])
            data["extra_unpaired"] = tuple((str(n), int(c)) for n, c in data.get("extra_unpaired", ()))
            train = dict(raw["train"])
            train["keep_steps"] = tuple(int(s) for s in train.get("keep_steps", ()))
            return cls(name=raw["name"], data=DataConfig(**data), model=ModelConfig(**model),
                       loss=LossConfig(**raw["loss"]), train=TrainConfig(**train))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ConfigError(f"malformed config: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def from_json_file(cls, path: str) -> "ExperimentConfig":
        try:
            with open(path) as f:
                raw = json.load(f)
        except FileNotFoundError as exc:
            raise ConfigError(f"no config at {path} (is this a run directory written by mmali_tf.train?)") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return cls.from_dict(raw)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}
"""The config's sections, by the attribute name under :class:`ExperimentConfig`."""


def settings(section) -> list[dataclasses.Field]:
    """The fields of a config class (or instance) that are settings (every field made by :func:`setting`)."""
    return [f for f in dataclasses.fields(section) if "help" in f.metadata]


def _check_settings(section) -> None:
    for f in settings(section):
        value, meta = getattr(section, f.name), f.metadata
        where = f.metadata["flag"] or f.name
        if meta["choices"] is not None and value not in meta["choices"]:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        if value is None or isinstance(value, (tuple, str, bool)):
            continue
        if not math.isfinite(value):  # nan passes every comparison
            raise ConfigError(f"{where} must be a finite number, got {value}")
        if meta["lower"] is not None and value < meta["lower"]:
            raise ConfigError(f"{where} must be >= {meta['lower']}, got {value}")
        if meta["upper"] is not None and value > meta["upper"]:
            raise ConfigError(f"{where} must be <= {meta['upper']}, got {value}")


# ------------------------------------------------------------------------------------ dotted overrides
def parse_modality(text: str) -> ModalitySpec:
    """``name:dataset:kind[:quarter_turns[:rec_weight]]``; later parts may also be ``field=value``."""
    parts = text.split(":")
    if len(parts) < 3 or not all(parts[:3]):
        raise ConfigError(f"modality {text!r} must be name:dataset:kind[:quarter_turns[:rec_weight]]")
    fields = {f.name: f for f in dataclasses.fields(ModalitySpec)}
    hints = typing.get_type_hints(ModalitySpec)
    values = dict(name=parts[0], dataset=parts[1], kind=parts[2])
    positional = [name for name in fields if name not in values]
    for i, part in enumerate(parts[3:]):
        key, sep, raw = part.partition("=")
        if not sep:
            if i >= len(positional):
                raise ConfigError(f"modality {text!r}: too many parts")
            key, raw = positional[i], part
        if key not in fields:
            raise ConfigError(f"modality {text!r}: unknown field {key!r} (fields: {', '.join(fields)})")
        values[key] = _parse_scalar(raw, hints[key], f"modality {text!r} field {key}")
    return ModalitySpec(**values)


def parse_extra_unpaired(entries) -> tuple[tuple[str, int], ...]:
    """``["mnist:all", "svhn:10000"]`` -> ``(("mnist", -1), ("svhn", 10000))``; -1 means all of them."""
    out = []
    for entry in entries:
        name, _, count = entry.partition(":")
        if not name or not count or not (count == "all" or count.isdigit()):
            raise ConfigError(f"extra_unpaired entry {entry!r} must be name:count or name:all")
        out.append((name, -1 if count == "all" else int(count)))
    return tuple(out)


def _parse_scalar(raw: str, kind, where: str):
    if typing.get_origin(kind) is tuple:  # e.g. MLP widths: 512/256/128
        try:
            return tuple(int(part) for part in raw.split("/") if part)
        except ValueError:
            raise ConfigError(f"{where}: {raw!r} is not a /-separated list of integers") from None
    optional = type(None) in typing.get_args(kind)
    base = next((a for a in typing.get_args(kind) if a is not type(None)), kind) if optional else kind
    if optional and raw.lower() in ("", "none", "auto"):
        return None
    try:
        if base is bool:
            if raw.lower() in ("true", "1", "yes"):
                return True
            if raw.lower() in ("false", "0", "no"):
                return False
            raise ValueError(f"{raw!r} is not a boolean")
        return base(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse_steps(items) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(item) for item in items}))
    except ValueError:
        raise ConfigError(f"steps must be integers, got {list(items)}") from None


LIST_PARSERS: dict[str, Callable] = {  # settings given as lists of text parts on the command line
    "model.modalities": lambda items: tuple(parse_modality(m) for m in items),
    "data.extra_unpaired": parse_extra_unpaired,
    "train.keep_steps": _parse_steps,
}


def field_types() -> dict[str, tuple[object, dataclasses.Field]]:
    """Dotted path -> (type, field) of every setting."""
    out = {"name": (str, next(f for f in dataclasses.fields(ExperimentConfig) if f.name == "name"))}
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in settings(cls):
            out[f"{section}.{f.name}"] = (hints[f.name], f)
    return out


def apply_overrides(config: ExperimentConfig, overrides: Mapping[str, object]) -> ExperimentConfig:
    """``config`` with dotted settings replaced; values may be typed or command-line text (lists for tuples)."""
    types = field_types()
    sections: dict[str, dict] = {}
    top = {}
    for path, value in overrides.items():
        if path not in types:
            raise ConfigError(f"unknown setting {path!r}")
        kind, _ = types[path]
        if path in LIST_PARSERS and (isinstance(value, str) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))):
            try:
                value = LIST_PARSERS[path]([value] if isinstance(value, str) else list(value)) if value else ()
            except ConfigError as exc:
                raise ConfigError(f"setting {path}: {exc}") from None
        elif isinstance(value, str) and kind is not str:
            value = _parse_scalar(value, kind, f"setting {path}")
        if "." in path:
            section, key = path.split(".", 1)
            sections.setdefault(section, {})[key] = value
        else:
            top[path] = value
    return config.replace(**sections, **top)
