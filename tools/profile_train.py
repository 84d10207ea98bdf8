"""Where one training iteration spends its time: a TensorFlow profiler trace of a few steps, summarised by op type.

    python tools/profile_train.py [--config=mnist_svhn] [--config.<section>.<field>=value ...]
        [--steps=10] [--warmup=3] [--logdir=/tmp/mmali_profile] [--top=15]

The model is what ``python -m mmali_tf.train`` would train with the same ``--config`` and ``--config.*`` flags
(a preset or a .py file; the config flags and their short aliases, e.g. ``--xla``, ``--intra_op_threads``,
``--data_dir``, are those of ``mmali_tf.train``; ``--helpfull`` lists them), with its "auto" execution settings
resolved for this machine as training resolves them (on a CPU-only machine: no XLA, the thread policy of
``mmali_tf.distribution``). Data as ``benchmark_train``: ``--data_dir``, else $MMALI_DATA_DIR, else MNIST in
../shared/data and the SVHN stand-in in ../data/svhn_standin beside the repository (random arrays with a warning
where files are absent). After ``--warmup`` untimed steps, ``--steps`` steps run under ``tf.profiler.experimental``;
the trace is written to a new folder under ``--logdir`` (open it with TensorBoard's profile plugin or xprof for the
timeline) and summarised here from its XPlane file:

* wall time per step, and the part of it in which no TF op ran on any executor thread (Python, Keras callbacks,
  input wait, scheduling gaps);
* per op type: time per step (summed over executor threads, so two ops running side by side both count), share,
  calls per step. Without XLA these are the TF kernels (oneDNN convolutions, MatMul, ...); with ``--xla`` the
  compiled clusters appear as a few large ops.
"""

from __future__ import annotations

import sys  # noqa: E402  (run as ``python tools/<name>.py``: the checkout's mmali_tf and tools packages)
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import collections
import glob
import os
import tempfile
import time

from absl import flags

from mmali_tf import cli
from mmali_tf.errors import MMALIError
from mmali_tf.tools import flag_checks
from tools import speed

# Events that only group other ops (their time is already counted in the ops they call).
CONTAINER_OPS = {"StatefulPartitionedCall", "PartitionedCall", "While", "If", "StatelessIf", "StatelessWhile"}
F = flags.FLAGS


def op_events(xspace_path: str):
    """(op type, start ps, duration ps) of every TF op kernel on the executor threads of the host plane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as f:
        space.ParseFromString(f.read())
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:
                    continue  # executor bookkeeping (ExecutorState::Process, ...), allocations
                op_type = name.rsplit(":", 1)[1]
                if op_type in CONTAINER_OPS:
                    continue
                yield op_type, line.timestamp_ns * 1000 + event.offset_ps, event.duration_ps


def union_length(intervals) -> int:
    """Total length covered by the (start, stop) ``intervals``, overlaps counted once."""
    total, end = 0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def summarise(xspace_path: str, steps: int, wall_seconds: float, top: int) -> str:
    """The report of the module docstring for the trace ``xspace_path`` of ``steps`` steps that took
    ``wall_seconds``, listing the ``top`` op types by time."""
    per_type, calls, intervals = collections.Counter(), collections.Counter(), []
    for op_type, start, duration in op_events(xspace_path):
        per_type[op_type] += duration
        calls[op_type] += 1
        intervals.append((start, start + duration))
    if not intervals:
        return "no TF op events found in the trace"
    step_ms = 1000.0 * wall_seconds / steps
    busy_ms = union_length(intervals) / 1e9 / steps
    total_ms = sum(per_type.values()) / 1e9 / steps
    lines = [f"{steps} steps, {step_ms:.1f} ms/step wall ({1000.0 / step_ms:.2f} it/s under the profiler); "
             f"some op running {busy_ms:.1f} ms/step ({100 * busy_ms / step_ms:.0f}%), "
             f"no op running {step_ms - busy_ms:.1f} ms/step; op time summed over threads {total_ms:.1f} ms/step",
             "",
             f"{'op type':<34}{'ms/step':>10}{'share':>8}{'calls/step':>12}",
             "-" * 64]
    for op_type, ps in per_type.most_common(top):
        ms = ps / 1e9 / steps
        lines.append(f"{op_type:<34}{ms:>10.2f}{100 * ms / total_ms:>7.1f}%{calls[op_type] / steps:>12.1f}")
    rest = sum(ps for _, ps in per_type.most_common()[top:]) / 1e9 / steps
    lines.append(f"{'(other ' + str(max(len(per_type) - top, 0)) + ' op types)':<34}{rest:>10.2f}"
                 f"{100 * rest / total_ms:>7.1f}%")
    return "\n".join(lines)


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    cli.define_config_flags()
    F.set_default("config", "mnist_svhn")
    flags.DEFINE_integer("steps", 10, "Profiled training steps.", lower_bound=1)
    flags.DEFINE_integer("warmup", 3, "Untimed first steps (tracing, compilation).", lower_bound=1)
    flags.DEFINE_string("logdir", os.path.join(tempfile.gettempdir(), "mmali_profile"),
                        "Where the profiler trace is written (a new folder per run).")
    flags.DEFINE_integer("top", 15, "Op types listed.", lower_bound=1)
    flag_checks.require_output_dir("logdir")
    # The config is built while the flags are parsed, so that a bad preset or setting is a bad flag.
    flag_checks.require("config", lambda _: cli.config_from_flags())


def main(argv) -> None:
    del argv
    import tensorflow as tf

    from mmali_tf import distribution, training
    from mmali_tf.data.pipeline import paired_batches

    config = cli.resolved_config_from_flags()
    t = config.train
    distribution.configure_threads(t)  # as mmali_tf.train does, before any TF op
    distribution.configure_devices(t)
    strategy = distribution.make_strategy(t)
    images, pairs, sources = speed.load_training_data(config, speed.default_data_dirs(config.data.data_dir))
    model = training.build_model(config, strategy)
    dataset = paired_batches(images, pairs, batch_size=t.batch_size, seed=0)
    model.fit(dataset, epochs=1, steps_per_epoch=F.warmup, verbose=0, shuffle=False)
    run_dir = os.path.join(F.logdir, time.strftime("%Y%m%d-%H%M%S"))
    tf.profiler.experimental.start(run_dir)
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=F.steps, verbose=0, shuffle=False)
    wall = time.perf_counter() - started
    tf.profiler.experimental.stop()
    traces = sorted(glob.glob(os.path.join(run_dir, "plugins", "profile", "*", "*.xplane.pb")))
    if not traces:
        raise MMALIError(f"the profiler wrote no trace under {run_dir}")
    print(f"{F.config} ({config.name}), XLA {'on' if t.xla else 'off'}, {distribution.describe_threads()}, "
          f"{strategy.num_replicas_in_sync} replica(s), batch {t.batch_size} x {speed.CALLS_PER_ITERATION} calls per "
          f"iteration, TensorFlow {tf.__version__}; data " + "; ".join(f"{n}: {s}" for n, s in sources.items()))
    print(f"trace {traces[-1]}")
    print(summarise(traces[-1], F.steps, wall, F.top))


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
