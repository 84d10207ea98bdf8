"""Choosing a ``tf.distribute`` strategy (TensorFlow's own; no home-made scheme)."""

from __future__ import annotations

import tensorflow as tf

from mmali_tf.config import TrainConfig
from mmali_tf.errors import ConfigError


def configure_devices(train: TrainConfig) -> None:
    """Split the CPU into ``num_devices`` logical devices when mirroring on a machine without accelerators.

    Must run before TensorFlow executes any op (logical devices cannot be changed afterwards).
    """
    if train.strategy != "mirrored" or train.num_devices <= 1:
        return
    if tf.config.list_physical_devices("GPU"):
        return  # real accelerators: mirror over them
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * train.num_devices)
    except RuntimeError as exc:
        if len(tf.config.list_logical_devices("CPU")) != train.num_devices:
            raise ConfigError(f"cannot create {train.num_devices} logical CPU devices: {exc}") from exc


def make_strategy(train: TrainConfig) -> tf.distribute.Strategy:
    if train.strategy == "default":
        return tf.distribute.get_strategy()
    if train.strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices[: max(train.num_devices, len(gpus))])
    if train.strategy == "multi_worker":
        # Reads the cluster from the TF_CONFIG environment variable, as TensorFlow documents.
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {train.strategy!r}")
