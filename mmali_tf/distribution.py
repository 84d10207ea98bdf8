"""How training executes: XLA, CPU threads, devices and the ``tf.distribute`` strategy (TensorFlow's own; no
home-made scheme)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import sys
from importlib import metadata

import tensorflow as tf

from mmali_tf.config import TrainConfig
from mmali_tf.errors import ConfigError


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_execution(xla: bool | None, intra_op_threads: int, inter_op_threads: int) -> tuple[bool, int, int]:
    """Fill in "auto" execution settings (``xla=None``, negative thread counts) for this machine.

    With an accelerator: XLA on, TensorFlow's default threads (0). On a CPU-only machine: XLA off (XLA's CPU
    convolutions are slower than oneDNN's) and two ops at a time, each on half of the cores: the step is a wide
    graph of mid-sized ops (several discriminators, several modalities), where ops side by side beat every op on all
    cores (BUILD.md, "Speed on CPU", has the measurements). Explicit values are kept as given; so is a count set through TensorFlow's
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
    """``config`` with its "auto" execution settings (``xla=None``, negative thread counts, ``precision="auto"``)
    decided for this machine (:func:`resolve_execution`, :func:`resolve_precision`); the run directory records
    the resolved values."""
    t = config.train
    xla, intra, inter = resolve_execution(t.xla, t.intra_op_threads, t.inter_op_threads)
    return config.replace(train=dict(xla=xla, intra_op_threads=intra, inter_op_threads=inter,
                                     precision=resolve_precision(t.precision, config.name)))


BF16_CPU_FLAGS: tuple[str, ...] = ("avx512_bf16", "amx_bf16")
"""/proc/cpuinfo flags of a bf16 dot-product instruction (any one suffices): AVX512-BF16, AMX-BF16."""

BF16_CHECKED_CONFIGS: frozenset[str] = frozenset({"multimnist_m2"})
"""Configs (by ``ExperimentConfig.name``, the preset's name) whose bf16 training passed the equal-budget check
against fp32 (BUILD.md, "Mixed precision"); ``precision=auto`` picks bf16 only for these."""


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_precision(precision: str, config_name: str) -> tuple[str, str]:
    """The precision to train in and why: an explicit ``fp32``/``bf16`` is kept; ``auto`` is bf16 where the
    hardware has a bf16 dot product (a GPU or TPU, or a CPU with one of :data:`BF16_CPU_FLAGS`) and the config passed
    the bf16 equal-budget check (:data:`BF16_CHECKED_CONFIGS`), else fp32."""
    if precision != "auto":
        return precision, "set explicitly"
    accelerated = bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))
    found = sorted(set(BF16_CPU_FLAGS) & cpu_flags())
    hardware = "a GPU/TPU" if accelerated else (f"a CPU with {'/'.join(found)}" if found else "")
    if not hardware:
        return "fp32", "auto: this CPU has no bf16 dot product"
    if config_name not in BF16_CHECKED_CONFIGS:
        return "fp32", f"auto: {hardware}, but no bf16 equal-budget check has passed for config {config_name!r}"
    return "bf16", f"auto: {hardware}, and config {config_name!r} passed the bf16 equal-budget check"


def resolve_precision(precision: str, config_name: str = "") -> str:
    return choose_precision(precision, config_name)[0]


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


def describe_devices() -> str:
    """The devices TensorFlow found, and a warning if both of its CPU and GPU builds are installed."""
    counts = {kind: len(tf.config.list_physical_devices(kind)) for kind in ("CPU", "GPU", "TPU")}
    text = "devices: " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n or kind != "TPU")
    builds = installed_tensorflow_builds()
    if len(builds) > 1:
        text += (f" (warning: both {' and '.join(builds)} are installed and overwrite each other; for the GPU "
                 "build run: pip uninstall -y tensorflow-cpu && pip install --force-reinstall 'tensorflow[and-cuda]"
                 f"=={tf.__version__}')")
    return text


def installed_tensorflow_builds() -> list[str]:
    found = []
    for name in ("tensorflow", "tensorflow-cpu"):
        try:
            metadata.version(name)
            found.append(name)
        except metadata.PackageNotFoundError:
            pass
    return found


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


@dataclasses.dataclass(frozen=True)
class Role:
    """This process's place in the cluster: ``chief`` writes the run directory, the others only compute."""

    task_type: str
    task_index: int
    num_workers: int
    is_chief: bool
    addresses: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.num_workers == 1 and not self.addresses:
            return "single process (chief)"
        what = "chief: writes the run directory" if self.is_chief else "computes only, writes nothing to the run dir"
        return f"{self.task_type} {self.task_index} of {self.num_workers} workers ({what})"


SINGLE = Role("worker", 0, 1, True)


def role_of(train: TrainConfig, environ=os.environ) -> Role:
    """This process's role: from ``TF_CONFIG`` for ``strategy=multi_worker`` (validated here), else the single one.

    TF_CONFIG is TensorFlow's cluster description: ``{"cluster": {"worker": ["host:port", ...], ["chief": [...]]},
    "task": {"type": "worker", "index": i}}``. The chief is the ``chief`` task if there is one, else worker 0.
    """
    if train.strategy != "multi_worker":
        return SINGLE
    raw = environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError("strategy=multi_worker needs the TF_CONFIG environment variable (the cluster and this "
                          "task; see BUILD.md, 'Multi-worker training', or use python -m mmali_tf.launch)")
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        task_type, index = task["type"], task["index"]
        jobs = {name: list(addresses) for name, addresses in cluster.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"malformed TF_CONFIG ({type(exc).__name__}: {exc}); expected "
                          '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') from None
    if not set(jobs) <= {"worker", "chief"} or "worker" not in jobs and "chief" not in jobs:
        raise ConfigError(f"malformed TF_CONFIG: cluster jobs must be 'worker' (and optionally one 'chief'), got "
                          f"{sorted(jobs)}")
    addresses = tuple(a for name in ("chief", "worker") for a in jobs.get(name, []))
    for address in addresses:
        host, _, port = str(address).rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"malformed TF_CONFIG: address {address!r} is not host:port")
    if len(set(addresses)) != len(addresses):
        raise ConfigError(f"malformed TF_CONFIG: an address appears twice in {list(addresses)}")
    if len(jobs.get("chief", [])) > 1:
        raise ConfigError("malformed TF_CONFIG: at most one chief")
    if task_type not in jobs or not isinstance(index, int) or not 0 <= index < len(jobs[task_type]):
        raise ConfigError(f"malformed TF_CONFIG: task {task_type!r} {index!r} is not in the cluster {jobs}")
    chief = ("chief", 0) if "chief" in jobs else ("worker", 0)
    return Role(task_type, index, len(addresses), (task_type, index) == chief, addresses)


_WATCHDOG = """
import os, select, signal, sys
pid, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if not select.select([sys.stdin], [], [], seconds)[0]:
    sys.stderr.write("error: " + message + "\\n")
    sys.stderr.flush()
    os.kill(pid, signal.SIGKILL)
"""


class _Watchdog:
    """Ends this process with one error line if the block does not finish within ``seconds``.

    TensorFlow's cluster start-up blocks until every worker is there, holding the interpreter lock (no Python
    thread or signal handler runs meanwhile), so the watchdog is a small separate process that kills this one.
    """

    def __init__(self, seconds: float, message: str):
        self._args = [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds), message]
        self._process = None

    def __enter__(self):
        self._process = subprocess.Popen(self._args, stdin=subprocess.PIPE)
        return self

    def __exit__(self, *exc):
        self._process.stdin.close()  # the block is over: the watchdog sees end-of-file and exits
        self._process.wait()
        return False


def make_strategy(train: TrainConfig, role: Role = SINGLE) -> tf.distribute.Strategy:
    if train.strategy == "default":
        return tf.distribute.get_strategy()
    if train.strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices[: max(train.num_devices, len(gpus))])
    if train.strategy == "multi_worker":
        # A timed collective parks one sleeping thread for the whole timeout (Env::SchedClosureAfter), hundreds per
        # step: with 600 s a worker reached ~15,000 threads in 40 s and aborted (pthread_create: EAGAIN).
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=train.collective_timeout or None)
        message = (f"{role.task_type} {role.task_index} could not reach the other workers of TF_CONFIG "
                   f"({', '.join(role.addresses)}) within {train.cluster_timeout} s; start the same command on "
                   "every worker (nothing was written)")
        with _Watchdog(train.cluster_timeout, message):
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
            agree(strategy, 0, "cluster start-up")  # the first collective: every worker is there
        return strategy
    raise ConfigError(f"unknown strategy {train.strategy!r}")


def fingerprint(payload) -> int:
    """A 52-bit fingerprint of a JSON-able value (exact in float64, so it survives any reduction)."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return int(digest[:13], 16)


def agree(strategy: tf.distribute.Strategy, value: int, what: str) -> None:
    """Check that every replica of the cluster holds the same ``value`` (e.g. a config fingerprint)."""
    if strategy.num_replicas_in_sync == 1:
        return

    @tf.function
    def everyones():
        def fn():
            context = tf.distribute.get_replica_context()
            return context.all_gather(tf.constant([value], tf.int64), axis=0)
        return strategy.run(fn)

    values = strategy.experimental_local_results(everyones())[0].numpy()
    if len(set(values.tolist())) != 1:
        raise ConfigError(f"the workers disagree on the {what}: start every worker with the same command and "
                          "config")


def broadcast_from_chief(strategy: tf.distribute.Strategy, variables) -> None:
    """Give every replica the chief's (replica 0's) values of ``variables``, e.g. after the chief restored."""
    if strategy.num_replicas_in_sync == 1:
        return
    variables = list(variables)

    @tf.function
    def chief_values():
        def fn():
            context = tf.distribute.get_replica_context()
            first = tf.equal(context.replica_id_in_sync_group, 0)
            return [context.all_reduce(tf.distribute.ReduceOp.SUM,
                                       tf.where(first, tf.convert_to_tensor(v), tf.zeros_like(v))) for v in variables]
        return strategy.run(fn)

    values = chief_values()
    for variable, value in zip(variables, values):
        variable.assign(strategy.experimental_local_results(value)[0])
