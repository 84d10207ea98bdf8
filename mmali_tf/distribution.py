"""How training executes: XLA, CPU threads, devices and the ``tf.distribute`` strategy (TensorFlow's own; no
home-made scheme)."""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from mmali_tf.config import TrainConfig
from mmali_tf.errors import ConfigError


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_execution(xla: bool | None, intra_op_threads: int, inter_op_threads: int) -> tuple[bool, int, int]:
    """Fill in "auto" execution settings (``xla=None``, negative thread counts) for this machine.

    With an accelerator: XLA on, TensorFlow's default threads (0). On a CPU-only machine: XLA off (XLA's CPU
    convolutions are slower than oneDNN's here) and two ops at a time, each on half of the cores. The step is a
    wide graph of mid-sized ops (several discriminators, several modalities), and on the 2-core benchmark machine
    running two single-threaded ops side by side beats TensorFlow's default of every op on all cores by 9-58%
    (BUILD.md, "Speed on CPU"). Explicit values are kept as given; so is a count set through TensorFlow's
    environment variables (``TF_NUM_INTRAOP_THREADS``, ``TF_NUM_INTEROP_THREADS``), which "auto" leaves at 0.
    """
    accelerated = bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))
    if xla is None:
        xla = accelerated
    if accelerated or xla:
        auto_intra, auto_inter = 0, 0  # one XLA cluster per step needs all cores inside the op
    else:
        auto_intra, auto_inter = max(1, usable_cpus() // 2), 2
    if os.environ.get("TF_NUM_INTRAOP_THREADS"):
        auto_intra = 0
    if os.environ.get("TF_NUM_INTEROP_THREADS"):
        auto_inter = 0
    intra = auto_intra if intra_op_threads < 0 else intra_op_threads
    inter = auto_inter if inter_op_threads < 0 else inter_op_threads
    return bool(xla), intra, inter


def resolve(config):
    """``config`` with its "auto" execution settings (``xla=None``, negative thread counts) decided for this
    machine by :func:`resolve_execution`; the run directory records the resolved values."""
    t = config.train
    xla, intra, inter = resolve_execution(t.xla, t.intra_op_threads, t.inter_op_threads)
    return config.replace(train=dict(xla=xla, intra_op_threads=intra, inter_op_threads=inter))


def configure_threads(train: TrainConfig) -> None:
    """Apply the thread counts of ``train`` (0 keeps TensorFlow's default); call before TensorFlow runs any op.

    If the runtime is already running with other counts (several runs in one process), it keeps them: the counts
    change speed and float rounding (some kernels split their sums by thread), not what is learned.
    """
    for setting, value in (("intra_op", train.intra_op_threads), ("inter_op", train.inter_op_threads)):
        getter = getattr(tf.config.threading, f"get_{setting}_parallelism_threads")
        if value <= 0 or getter() == value:
            continue
        try:
            getattr(tf.config.threading, f"set_{setting}_parallelism_threads")(value)
        except RuntimeError:
            logging.getLogger(__name__).warning(
                "TensorFlow is already running with %s_threads=%d; keeping it (asked for %d)", setting, getter(), value)


def describe_threads() -> str:
    """The thread counts TensorFlow is running with (which may differ from a config's if it started earlier)."""
    def show(value: int) -> str:
        return str(value) if value > 0 else "default"

    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    return f"threads intra-op {show(intra)} / inter-op {show(inter)}"


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
