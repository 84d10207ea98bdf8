"""What the training-speed tools share (``benchmark_train`` and its worker, ``profile_train``, our side of
``benchmark_vs_authors``): the benchmark configurations and their data, the FLOP count of a step, CPU and thread
facts, and the formatting of rates.

Loads only the standard library. numpy, TensorFlow and the rest of ``mmali_tf`` are imported inside the functions,
from whichever ``mmali_tf`` is being timed (for ``benchmark_train --baseline REF`` an older commit's).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import sys
from pathlib import Path

BENCHMARK_PRESETS = ("mnist_svhn", "multimnist_m2", "multimnist_m4")
"""The presets the benchmarks time by default: the authors' README configurations."""
CALLS_PER_ITERATION = 4  # paired batches per training iteration (D unimodal, D joint, G unimodal, G joint)
TRAINING_ITERATIONS = 250_000  # the paper's and the presets' max_iter: the "hours" columns are for this many
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # /proc/cpuinfo names


# ------------------------------------------------------------------------------------------------ rates
def hours_for(iterations: int, its: float) -> float:
    """Hours that ``iterations`` take at ``its`` iterations per second."""
    return iterations / its / 3600.0


def spread(values) -> str:
    """"median (min-max)" of ``values``, two decimals."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads): less sensitive to other processes than wall time."""
    t = os.times()
    return t.user + t.system


# ------------------------------------------------------------------------------------------------ machine
def cpu_facts() -> dict:
    """The CPU model (/proc/cpuinfo's "model name", which lscpu shows), its SIMD flags of interest, and the CPUs
    present / usable here."""
    model, cpu_flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    cpu_flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "simd": {x: x in cpu_flags for x in SIMD_FLAGS}, "cpus": os.cpu_count(),
            "usable": usable}


def cpu_description() -> str:
    """:func:`cpu_facts` in one line."""
    facts = cpu_facts()
    simd = ", ".join(x for x, present in facts["simd"].items() if present) or "none"
    return f"{facts['model']}; {facts['cpus']} CPUs ({facts['usable']} usable); SIMD: {simd}"


def thread_report(tf) -> dict:
    """The thread counts TensorFlow runs with, the environment variables that change them, its version."""
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                               "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS") if k in os.environ},
            "tf": tf.__version__}


# ------------------------------------------------------------------------------------------------ data
def default_data_dirs(data_dir: str | None) -> dict[str, str]:
    """Directory per dataset: ``data_dir``, else ``$MMALI_DATA_DIR``, else beside the repository (MNIST in
    ``../shared/data``, the SVHN stand-in in ``../data/svhn_standin``; the current directory outside a checkout)."""
    from tools import repository

    base = data_dir or os.environ.get("MMALI_DATA_DIR")
    parent = (repository.repository_root() or Path.cwd()).parent
    return {"mnist": base or str(parent / "shared" / "data"), "svhn": base or str(parent / "data" / "svhn_standin")}


def load_training_data(config, dirs: dict[str, str], random_if_absent: bool = True):
    """Images per modality (uint8 NHWC), the same-label pairs and each modality's source.

    ``dirs`` maps a dataset name ("mnist", "svhn") to its directory (datasets it does not name use the config's).
    If a modality's files are absent: random arrays of the right shape with a warning on stderr
    (``random_if_absent``), else the loader's error is raised.
    """
    import numpy as np

    from mmali_tf import training_data
    from mmali_tf.data.pairing import pair_by_label
    from mmali_tf.errors import MMALIError
    try:
        from mmali_tf.kinds.builders import input_shape
    except ImportError:  # a --baseline checkout from before the builders moved to the kinds
        from mmali_tf.networks.registry import input_shape

    images, labels, sources = {}, {}, {}
    for spec in config.model.modalities:
        directory = dirs.get(spec.dataset, config.data.data_dir)
        cfg = dataclasses.replace(config, data=dataclasses.replace(config.data, data_dir=directory))
        try:
            split = training_data.load_modality(spec, "train", cfg)
            images[spec.name], labels[spec.name], sources[spec.name] = split.images, split.labels, split.source
        except (MMALIError, OSError) as exc:
            if not random_if_absent:
                raise
            print(f"WARNING (benchmark): {spec.name}: {exc}; using RANDOM arrays of shape {input_shape(spec)}",
                  file=sys.stderr, flush=True)
            rng = np.random.default_rng(len(images))
            images[spec.name] = rng.integers(0, 256, (60000,) + input_shape(spec), dtype=np.uint8)
            labels[spec.name] = rng.integers(0, 10, 60000)
            sources[spec.name] = "RANDOM (file absent)"
    d = config.data
    pairs = pair_by_label(labels, data_multiplication=d.data_multiplication, max_d=d.max_d, use_all=d.use_all,
                          percentage=d.percentage, seed=d.seed)
    return images, pairs, sources


# ------------------------------------------------------------------------------------------------ work per step
CONV_OPS = {"Conv2D": 0, "Conv2DBackpropInput": 2, "Conv2DBackpropFilter": 2}  # op -> input with the conv output


def count_step_flops(model, element_spec) -> float:
    """Float operations of one training step (D + G, forward + backward) as executed.

    Traces ``train_step`` (no XLA), keeps the ops that the step's outputs and variable updates depend on (the rest,
    e.g. the discriminators' weight gradients that the generator tape also builds, is pruned before it runs), and
    adds TF's per-op "flops" statistics. Convolutions are counted as 2 * (forward output elements) * kh * kw * C_in
    for the forward op and for both gradient ops: TF's registered formulas for the gradient ops assume
    output = input / stride, which over-counts the 4x4 "valid" convolutions (4x4 -> 1x1) 16-fold.
    """
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops

    graph = tf.function(model.train_step).get_concrete_function(element_spec).graph
    graph_def = graph.as_graph_def()
    roots = [n.name for n in graph_def.node if n.op.startswith(("Assign", "ResourceApply"))]
    roots += [t.op.name for t in graph.outputs]
    live = {n.name for n in tf.compat.v1.graph_util.extract_sub_graph(graph_def, roots).node}
    total = 0.0
    for op in graph.get_operations():
        if op.name not in live:
            continue
        if op.type in CONV_OPS:
            kernel = op.inputs[1].shape if op.type != "Conv2DBackpropFilter" else op.outputs[0].shape
            out = op.outputs[0].shape if op.type == "Conv2D" else op.inputs[CONV_OPS[op.type]].shape
            total += 2.0 * out.num_elements() * kernel[0] * kernel[1] * kernel[2]
            continue
        try:
            total += tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0
        except (ValueError, TypeError):  # no statistic registered, or shapes not fully known
            pass
    return total


def matmul_peak_gflops(dtype: str, size: int = 1024, seconds: float = 2.0) -> float:
    """GFLOP/s of repeated ``size`` x ``size`` matmuls in ``dtype`` ("float32" or "bfloat16") with TensorFlow's
    current thread settings: the machine's practical peak through oneDNN, for utilization figures."""
    import time

    import tensorflow as tf

    a = tf.random.stateless_normal([size, size], seed=[1, 2], dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def chain(x):
        for _ in range(8):
            x = tf.matmul(x, a) * tf.cast(1.0 / size, dtype)
        return x

    chain(a).numpy()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        chain(a).numpy()
        count += 8
    return 2.0 * size ** 3 * count / (time.perf_counter() - started) / 1e9
