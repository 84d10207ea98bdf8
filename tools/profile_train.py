"""Where one training iteration spends its time: a TensorFlow profiler trace of a few steps, summarised by op type.

    python tools/profile_train.py [--config mnist_svhn] [--xla] [--steps 10] [--warmup 3] [--data_dir DIR]
        [--logdir /tmp/mmali_profile] [--top 15] [--intra_op -1] [--inter_op -1]

Same configurations and data as ``tools/benchmark_train.py``. After ``--warmup`` untimed steps, ``--steps`` steps
run under ``tf.profiler.experimental``; the trace is written to ``--logdir`` (open it with TensorBoard's profile
plugin or xprof for the timeline) and summarised here from its XPlane file (threads as ``mmali_tf.train`` picks
them unless ``--intra_op`` / ``--inter_op`` say otherwise; 0 = TensorFlow's default):

* wall time per step, and the part of it in which no TF op ran on any executor thread (Python, Keras callbacks,
  input wait, scheduling gaps);
* per op type: time per step (summed over executor threads, so two ops running side by side both count), share,
  calls per step. Without XLA these are the TF kernels (oneDNN convolutions, MatMul, ...); with ``--xla`` the
  compiled clusters appear as a few large ops.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import benchmark_train as bench  # noqa: E402  (shares the configurations and the data loading)

# Events that only group other ops (their time is already counted in the ops they call).
CONTAINER_OPS = {"StatefulPartitionedCall", "PartitionedCall", "While", "If", "StatelessIf", "StatelessWhile"}


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="mnist_svhn", choices=bench.CONFIGS)
    p.add_argument("--xla", action="store_true", help="compile the step with XLA (default: off, the TF kernels)")
    p.add_argument("--steps", type=int, default=10, help="profiled training steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed first steps (tracing, compilation)")
    p.add_argument("--data_dir", default=None, help="directory with mnist.npz and/or train_32x32.mat")
    p.add_argument("--logdir", default="/tmp/mmali_profile", help="where the profiler trace is written")
    p.add_argument("--top", type=int, default=15, help="op types listed")
    p.add_argument("--intra_op", type=int, default=-1, help="-1 = what mmali_tf.train picks, 0 = TF's default")
    p.add_argument("--inter_op", type=int, default=-1, help="-1 = what mmali_tf.train picks, 0 = TF's default")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        p.error("--steps and --warmup must be >= 1")

    import tensorflow as tf

    from mmali_tf import distribution, training
    from mmali_tf.data.pipeline import paired_batches

    intra_op, inter_op = bench.resolved_threads(args.xla, args.intra_op, args.inter_op)
    config = bench.experiment_config(args.config, args.xla, 1, 1, intra_op, inter_op)
    distribution.configure_threads(config.train)  # as mmali_tf.train does, before any TF op
    images, pairs, sources = bench.load_training_data(config, bench.data_dirs(args.data_dir))
    model = training.build_model(config, tf.distribute.get_strategy())
    dataset = paired_batches(images, pairs, batch_size=bench.BATCH, seed=0)
    model.fit(dataset, epochs=1, steps_per_epoch=args.warmup, verbose=0, shuffle=False)
    run_dir = os.path.join(args.logdir, time.strftime("%Y%m%d-%H%M%S"))
    tf.profiler.experimental.start(run_dir)
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0, shuffle=False)
    wall = time.perf_counter() - started
    tf.profiler.experimental.stop()
    traces = sorted(glob.glob(os.path.join(run_dir, "plugins", "profile", "*", "*.xplane.pb")))
    if not traces:
        print(f"error: the profiler wrote no trace under {run_dir}", file=sys.stderr)
        return 1
    print(f"{args.config}, XLA {'on' if args.xla else 'off'}, threads {intra_op}/{inter_op} (intra/inter-op), "
          f"batch {bench.BATCH} x {bench.CALLS_PER_ITERATION} calls per iteration, TensorFlow {tf.__version__}; "
          f"trace {traces[-1]}")
    print(summarise(traces[-1], args.steps, wall, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
