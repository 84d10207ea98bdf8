"""Typed, immutable experiment configuration.

Entry points turn absl flags into an :class:`ExperimentConfig`; library code only ever sees this object.
The resolved config is written to ``<workdir>/config.json`` and read back by evaluation and export.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mmali_tf.errors import ConfigError

SPECTRAL_NORM_UPDATES = ("per_step", "per_forward")


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
    rec_weight: float = 1.0  # the reference's per-modality `mod_coeff` on reconstruction terms
    # Feature-vector kinds whose size is not fixed ("vector"): the feature size and the MLP widths (() = the
    # kind's default rule, networks/features.py FeatureWidths).
    feature_dim: int = 0
    encoder_hidden: tuple[int, ...] = ()
    x_hidden: tuple[int, ...] = ()
    z_hidden: tuple[int, ...] = ()
    head_hidden: tuple[int, ...] = ()

    def __post_init__(self):
        for key in ("encoder_hidden", "x_hidden", "z_hidden", "head_hidden"):  # JSON gives lists
            value = getattr(self, key)
            if isinstance(value, list):
                object.__setattr__(self, key, tuple(value))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data_dir: str | None = None  # raw files (mnist.npz, IDX, SVHN *_32x32.mat); None = embedded / TFDS only
    tfds_data_dir: str | None = None
    download: bool = False  # let TFDS download (needs internet)
    data_multiplication: int = 30
    max_d: int = 10000
    use_all: bool = True
    percentage: float = 1.0  # fraction of each class that is paired (the reference's --percentage)
    seed: int = 0  # pairing seed
    # Partial pairing with unpaired data: unimodal terms draw from per-modality pools (paired + unpaired images);
    # False = the authors' released behaviour (paired batches only, docs/authors_code.md section 1.3).
    unpaired: bool = False
    extra_unpaired: tuple[tuple[str, int], ...] = ()  # (modality, count) limits; -1 or absent = all unpaired images


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    modalities: tuple[ModalitySpec, ...]
    latent_dim: int = 20
    style_dim: int = 10
    discriminator: str = "factorized"  # "factorized" (MMALI) or "joint" (single M+1-way baseline, docs/objective.md section 6)
    joint_architecture: str = "dot"  # joint q(X) vs prod q(x_m) critic: "dot" (MNIST-SVHN) or "concat" (MultiMNIST)
    # Spectral-norm power iterations: "per_step" = one per discriminator layer and player step, which lets critics
    # reuse image features (fast); "per_forward" = before every discriminator forward, as the authors' torch code.
    spectral_norm_updates: str = "per_step"

    @property
    def content_dim(self) -> int:
        return self.latent_dim - self.style_dim

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    lambda_unimodal: float = 1.0
    lambda_x_rec: float = 0.0
    lambda_s_rec: float = 0.0
    lambda_c_rec: float = 0.0
    joint_rec: bool = False
    # Joint-discriminator baseline only: drop the first batch's terms as the authors' code does (their two calls
    # return the same dict keys); the call still runs. False = both batches count.
    discard_first_baseline_call: bool = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64  # global batch of each of the 4 paired batches per iteration
    max_iter: int = 250_000
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epsilon: float = 1e-8
    ema_start: int = 50_000
    ema_decay: float = 0.9999
    seed: int = 0  # network init and training noise
    save_every: int = 2000
    log_every: int = 50
    image_every: int = 2000
    eval_every: int = 0  # 0 = only at the end (if eval_at_end)
    eval_at_end: bool = False
    keep_checkpoints: int = 3
    xla: bool = True
    strategy: str = "default"  # "default", "mirrored", "multi_worker"
    num_devices: int = 1  # logical CPU devices to create for "mirrored" on a CPU-only machine
    steps_per_execution: int = 1
    intra_op_threads: int = 0  # threads inside one op; 0 = TensorFlow's default (all cores)
    inter_op_threads: int = 0  # ops run side by side; 0 = TensorFlow's default
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism()


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    name: str
    data: DataConfig
    model: ModelConfig
    loss: LossConfig
    train: TrainConfig

    def validate(self) -> "ExperimentConfig":
        m, t, d = self.model, self.train, self.data
        names = m.names
        if len(names) < 2:
            raise ConfigError(f"need at least 2 modalities, got {list(names)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"modality names must be unique, got {list(names)}")
        _validate_kinds_and_datasets(m.modalities)
        if not 0 <= m.style_dim < m.latent_dim:
            raise ConfigError(f"style_dim must be in [0, latent_dim), got style_dim={m.style_dim} latent_dim={m.latent_dim}")
        if m.discriminator not in ("factorized", "joint"):
            raise ConfigError(f"discriminator must be 'factorized' or 'joint', got {m.discriminator!r}")
        from mmali_tf.networks.registry import JOINT_ARCHITECTURES

        if m.joint_architecture not in JOINT_ARCHITECTURES:
            raise ConfigError(f"joint_architecture must be one of {', '.join(JOINT_ARCHITECTURES)}, got "
                              f"{m.joint_architecture!r}")
        if m.spectral_norm_updates not in SPECTRAL_NORM_UPDATES:
            raise ConfigError(f"spectral_norm_updates must be one of {SPECTRAL_NORM_UPDATES}, got "
                              f"{m.spectral_norm_updates!r}")
        if m.joint_architecture == "dot" and len(names) != 2 and m.discriminator == "factorized":
            raise ConfigError("the 'dot' joint discriminator needs exactly 2 modalities; use 'concat'")
        positive = {"batch_size": t.batch_size, "max_iter": t.max_iter, "save_every": t.save_every,
                    "log_every": t.log_every, "image_every": t.image_every, "keep_checkpoints": t.keep_checkpoints,
                    "num_devices": t.num_devices, "steps_per_execution": t.steps_per_execution,
                    "data_multiplication": d.data_multiplication, "max_d": d.max_d}
        for key, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{key} must be positive, got {value}")
        if t.eval_every < 0 or t.ema_start < 0:
            raise ConfigError("eval_every and ema_start must be >= 0")
        if t.intra_op_threads < 0 or t.inter_op_threads < 0:
            raise ConfigError("intra_op_threads and inter_op_threads must be >= 0 (0 = TensorFlow's default)")
        for name, count in d.extra_unpaired:
            if name not in names or count < -1:
                raise ConfigError(f"extra_unpaired entry {name}:{count}: unknown modality or count < -1")
        if not 0.0 < d.percentage <= 1.0:
            raise ConfigError(f"percentage must be in (0, 1], got {d.percentage}")
        if not 0.0 <= t.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {t.ema_decay}")
        if t.lr <= 0:
            raise ConfigError(f"lr must be positive, got {t.lr}")
        if t.strategy not in ("default", "mirrored", "multi_worker"):
            raise ConfigError(f"strategy must be default, mirrored or multi_worker, got {t.strategy!r}")
        if t.batch_size % t.num_devices:
            raise ConfigError(f"batch_size {t.batch_size} must be divisible by num_devices {t.num_devices}")
        for key in ("lambda_unimodal", "lambda_x_rec", "lambda_s_rec", "lambda_c_rec"):
            if getattr(self.loss, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self.loss, key)}")
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
            return cls(name=raw["name"], data=DataConfig(**data), model=ModelConfig(**model),
                       loss=LossConfig(**raw["loss"]), train=TrainConfig(**raw["train"]))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"malformed config: {exc}") from exc

    @classmethod
    def from_json_file(cls, path: str) -> "ExperimentConfig":
        try:
            with open(path) as f:
                raw = json.load(f)
        except FileNotFoundError as exc:
            raise ConfigError(f"no config at {path} (is this a run directory written by mmali_tf.train?)") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(raw)


def _validate_kinds_and_datasets(modalities) -> None:
    """Each modality's kind and dataset are registered, the kind accepts the spec's fields, the dataset delivers
    what the kind models (pixels or feature vectors), and all datasets pair their examples the same way."""
    from mmali_tf import kinds
    from mmali_tf.data import datasets

    pairings = {}
    for spec in modalities:
        if spec.kind not in kinds.KINDS:
            raise ConfigError(f"modality {spec.name!r}: unknown network kind {spec.kind!r} (choose from "
                              f"{', '.join(kinds.KINDS.names())})")
        if spec.dataset not in datasets.DATASETS:
            raise ConfigError(f"modality {spec.name!r}: unknown dataset {spec.dataset!r} (choose from "
                              f"{', '.join(datasets.DATASETS.names())})")
        kind, dataset = kinds.KINDS.get(spec.kind), datasets.DATASETS.get(spec.dataset)
        kind.check(spec)
        if dataset.examples != kind.examples:
            raise ConfigError(f"modality {spec.name!r}: dataset {spec.dataset!r} holds {dataset.examples}, but "
                              f"kind {spec.kind!r} models {kind.examples}")
        pairings.setdefault(dataset.pairing, spec.dataset)
    if len(pairings) > 1:
        raise ConfigError("datasets paired by label and datasets paired by row cannot be mixed: "
                          + ", ".join(f"{name} ({how})" for how, name in pairings.items()))
