"""Training-speed benchmark of mmali_tf (issue 6): it/s, examples/s, GFLOP/s and the tf.data rate.

    python tools/benchmark_train.py [--steps 25] [--repeats 3] [--warmup 3] [--data_dir DIR]
        [--configs mnist_svhn,multimnist2,multimnist4] [--modes xla1,noxla1,xla2,noxla2]
        [--steps_per_execution 1] [--intra_op -1] [--inter_op -1] [--pipeline_steps 300] [--baseline REF]

Configurations (one iteration = D step + G step on 4 fresh paired batches of 64, i.e. 4*64 tuples):

* ``mnist_svhn``: the README config of ``flags/mnist_svhn.cfg`` (2 modalities, latent 20 = 10 + 10, lambda_u 0.1,
  the three 0.05 reconstruction weights, joint_rec, dot joint critic), read from that flagfile.
* ``multimnist2`` / ``multimnist4``: MultiMNIST factorized with M = 2 / 4 rotated-MNIST modalities (MNIST networks
  per modality, concat joint critic, no reconstruction terms, lambda_u 0.1, latent 20 = 10 + 10).

Modes: XLA on/off x 1 replica (default strategy) / MirroredStrategy on 2 logical CPU devices. Every (config, mode)
runs in a fresh subprocess, because logical devices and thread counts must be set before TensorFlow runs any op.
Threads: by default what ``mmali_tf.train`` picks for the mode (``distribution.resolve_execution``: on a CPU-only
machine without XLA two ops at a time on half the cores each, with XLA TensorFlow's default); ``--intra_op`` /
``--inter_op`` override it (0 = TensorFlow's default). The table's "threads" column shows intra/inter per row.

Timing: ``model.fit`` on the real ``paired_batches`` tf.data pipeline (input included), ``--warmup`` steps (tracing,
XLA compilation) excluded, then ``--repeats`` consecutive windows of ``--steps`` steps; the table shows the median
window (and min-max). The pipeline rate is ``measure_rate`` of ``paired_batches`` alone, median of ``--repeats``.

``--baseline REF`` also times the code of git ref REF (e.g. the commit before a speed-up), mode by mode right before
the current code, so that both see about the same machine load; the table then shows both and the speed-up. Both
run with the thread counts of this checkout's policy (or ``--intra_op`` / ``--inter_op``), so the comparison shows
what the code changed, not what the thread policy changed; ``--intra_op 0 --inter_op 0`` times both with
TensorFlow's defaults.

GFLOP/s are given twice: (a) with the per-iteration work of the authors' code from issue 6 (46.9 / 6.0 / 13.5
GFLOP), i.e. the authors' work per iteration divided by our time per iteration, and (b) with our own count of what
our step executes (:func:`count_step_flops`: TF's per-op statistics over the live ops of the traced step, forward
and backward of both players, convolutions counted from their shapes), less than (a) where the objective skips
repeated work.

Data: MNIST ``mnist.npz`` from --data_dir, else $MMALI_DATA_DIR, else ../shared/data; the SVHN stand-in from
--data_dir, else $MMALI_DATA_DIR, else ../data/svhn_standin (paths relative to the repository's parent folder).
If a file is absent the benchmark warns and uses random uint8 arrays of the right shape.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from anywhere
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CONFIGS = ("mnist_svhn", "multimnist2", "multimnist4")
MODES = {"xla1": (True, 1), "noxla1": (False, 1), "xla2": (True, 2), "noxla2": (False, 2)}
CALLS_PER_ITERATION = 4
BATCH = 64
ISSUE_GFLOP = {"mnist_svhn": 46.9, "multimnist2": 6.0, "multimnist4": 13.5}  # authors' work per iteration
TARGET_ITS = {"mnist_svhn": 3.1, "multimnist2": 16.0, "multimnist4": 7.8}
AUTHORS_ITS = {"mnist_svhn": 1.54, "multimnist2": 8.1, "multimnist4": 3.9}
PIPELINE_TARGET_RATIO = 10.0
FLAGFILE = os.path.join(REPO, "flags", "mnist_svhn.cfg")


# ------------------------------------------------------------------------------------------------ configurations
def read_flagfile(path: str) -> dict[str, str]:
    """``--key=value`` lines of an absl flagfile; a bare ``--flag`` is "true"."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line.startswith("--"):
                continue
            key, sep, value = line[2:].partition("=")
            if not sep:  # a boolean: "--flag" (a "--noflag" leaves "flag" unset, i.e. false here)
                value = "true"
            values[key] = value
    return values


def resolved_threads(xla: bool, intra_op: int, inter_op: int) -> tuple[int, int]:
    """Thread counts for a mode: -1 = what ``mmali_tf.train`` picks (this checkout's policy), 0 = TF's default."""
    from mmali_tf import flags_common  # noqa: F401  (imports TensorFlow without its start-up banner)
    from mmali_tf import distribution

    return distribution.resolve_execution(xla, intra_op, inter_op)[1:]


def experiment_config(name: str, xla: bool, replicas: int, steps_per_execution: int, intra_op: int = 0,
                      inter_op: int = 0):
    """The benchmark configuration ``name`` (thread counts already resolved, 0 = TensorFlow's default)."""
    from mmali_tf.config import DataConfig, ExperimentConfig, LossConfig, ModalitySpec, ModelConfig, TrainConfig

    threads = {"intra_op_threads": intra_op, "inter_op_threads": inter_op}
    if not set(threads) <= set(TrainConfig.__dataclass_fields__):  # a --baseline older than these fields
        threads = {}
    train = TrainConfig(batch_size=BATCH, xla=xla, strategy="mirrored" if replicas > 1 else "default",
                        num_devices=replicas, steps_per_execution=steps_per_execution, **threads)
    if name == "mnist_svhn":
        f = read_flagfile(FLAGFILE)
        modalities = []
        for entry in f["modalities"].split(","):
            mod_name, dataset, kind = entry.split(":")[:3]
            modalities.append(ModalitySpec(mod_name, kind, dataset))
        model = ModelConfig(modalities=tuple(modalities), latent_dim=int(f["latent_dim"]),
                            style_dim=int(f["style_dim"]), discriminator=f["discriminator"],
                            joint_architecture=f["joint_architecture"])
        loss = LossConfig(lambda_unimodal=float(f["lambda_unimodal"]), lambda_x_rec=float(f["lambda_x_rec"]),
                          lambda_s_rec=float(f["lambda_s_rec"]), lambda_c_rec=float(f["lambda_c_rec"]),
                          joint_rec=f.get("joint_rec") == "true")
        if int(f["batch_size"]) != BATCH:
            raise SystemExit(f"{FLAGFILE}: batch_size {f['batch_size']} != {BATCH}")
        data = DataConfig(data_multiplication=int(f.get("data_multiplication", 30)), use_all=True)
    else:
        num = int(name[len("multimnist"):])
        modalities = tuple(ModalitySpec(f"mnist{i}", "mnist", "mnist", quarter_turns=i) for i in range(num))
        model = ModelConfig(modalities=modalities, latent_dim=20, style_dim=10, joint_architecture="concat")
        loss = LossConfig(lambda_unimodal=0.1)
        data = DataConfig()
    return ExperimentConfig(name=f"bench_{name}", data=data, model=model, loss=loss, train=train).validate()


def data_dirs(data_dir: str | None) -> dict[str, str]:
    base = data_dir or os.environ.get("MMALI_DATA_DIR")
    parent = os.path.dirname(REPO)
    return {"mnist": base or os.path.join(parent, "shared", "data"),
            "svhn": base or os.path.join(parent, "data", "svhn_standin")}


def load_training_data(config, dirs: dict[str, str], random_if_absent: bool = True):
    """Images per modality (uint8 NHWC), the same-label pairs and each modality's source.

    ``dirs`` maps a dataset name ("mnist", "svhn") to its directory. If a modality's files are absent: random arrays
    of the right shape with a warning on stderr (``random_if_absent``), else the loader's error is raised.
    """
    import numpy as np

    from mmali_tf import training_data
    from mmali_tf.data.pairing import pair_by_label
    from mmali_tf.errors import MMALIError
    from mmali_tf.networks.registry import IMAGE_SHAPES

    images, labels, sources = {}, {}, {}
    for spec in config.model.modalities:
        directory = dirs.get(spec.dataset)
        cfg = dataclasses.replace(config, data=dataclasses.replace(config.data, data_dir=directory))
        try:
            split = training_data.load_modality(spec, "train", cfg)
            images[spec.name], labels[spec.name], sources[spec.name] = split.images, split.labels, split.source
        except (MMALIError, OSError) as exc:
            if not random_if_absent:
                raise
            print(f"WARNING (benchmark): {spec.name}: {exc}; using RANDOM arrays of shape {IMAGE_SHAPES[spec.kind]}",
                  file=sys.stderr, flush=True)
            rng = np.random.default_rng(len(images))
            images[spec.name] = rng.integers(0, 256, (60000,) + IMAGE_SHAPES[spec.kind], dtype=np.uint8)
            labels[spec.name] = rng.integers(0, 10, 60000)
            sources[spec.name] = "RANDOM (file absent)"
    d = config.data
    pairs = pair_by_label(labels, data_multiplication=d.data_multiplication, max_d=d.max_d, use_all=d.use_all,
                          percentage=d.percentage, seed=d.seed)
    return images, pairs, sources


# ------------------------------------------------------------------------------------------------ child processes
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


def child_train(job: dict) -> dict:
    import tensorflow as tf

    set_threads(job)  # before any TF op
    import keras

    from mmali_tf import distribution, training
    from mmali_tf.data.pipeline import paired_batches

    xla, replicas = MODES[job["mode"]]
    config = experiment_config(job["config"], xla, replicas, job["steps_per_execution"], job["intra_op"],
                               job["inter_op"])
    distribution.configure_devices(config.train)
    strategy = distribution.make_strategy(config.train)
    images, pairs, sources = load_training_data(config, job["dirs"])
    model = training.build_model(config, strategy)
    dataset = paired_batches(images, pairs, batch_size=BATCH, seed=0)
    flops = count_step_flops(model, dataset.element_spec) if replicas == 1 else None

    k = job["steps_per_execution"]
    warmup = -(-job["warmup"] // k) * k
    steps = -(-job["steps"] // k) * k
    total = warmup + job["repeats"] * steps
    marks = {warmup + r * steps for r in range(job["repeats"] + 1)}
    times = {}

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):  # logs arrive as numpy: the steps have finished
            done = batch + 1  # Keras passes the index of the execution's last step
            if done in marks:
                times[done] = (time.perf_counter(), cpu_seconds())

    load_before = os.getloadavg()[0]
    model.fit(dataset, epochs=1, steps_per_epoch=total, verbose=0, callbacks=[Timer()], shuffle=False)
    windows, cpu = [], []
    for r in range(job["repeats"]):
        (t0, c0), (t1, c1) = times[warmup + r * steps], times[warmup + (r + 1) * steps]
        windows.append(steps / (t1 - t0))
        cpu.append((c1 - c0) / steps)
    return {"its": windows, "cpu_s": cpu, "flops": flops, "sources": sources, "load": [load_before, os.getloadavg()[0]],
            "threads": thread_report(tf), "replicas": strategy.num_replicas_in_sync}


def child_pipeline(job: dict) -> dict:
    import tensorflow as tf

    set_threads(job)
    from mmali_tf.data.pipeline import measure_rate, paired_batches

    config = experiment_config(job["config"], False, 1, 1)
    images, pairs, sources = load_training_data(config, job["dirs"])
    rates = [measure_rate(paired_batches(images, pairs, batch_size=BATCH, seed=r), steps=job["pipeline_steps"])
             for r in range(job["repeats"])]
    return {"rates": rates, "sources": sources, "threads": thread_report(tf)}


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads): less sensitive to other processes than wall time."""
    t = os.times()
    return t.user + t.system


def set_threads(job: dict) -> None:
    """Set the job's (resolved) thread counts through TensorFlow directly, which works for a --baseline too."""
    import tensorflow as tf

    if job["intra_op"] > 0:
        tf.config.threading.set_intra_op_parallelism_threads(job["intra_op"])
    if job["inter_op"] > 0:
        tf.config.threading.set_inter_op_parallelism_threads(job["inter_op"])


def thread_report(tf) -> dict:
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                               "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS") if k in os.environ},
            "tf": tf.__version__}


def run_child(job: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", json.dumps(job)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if line.startswith("WARNING (benchmark)"):
            print(f"  {line}", flush=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-15:])
    return {"error": f"exit {proc.returncode}: {tail}"}


# ------------------------------------------------------------------------------------------------ report
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # /proc/cpuinfo names


def cpu_facts() -> dict:
    """The CPU model (/proc/cpuinfo's "model name", which lscpu shows), its SIMD flags of interest, and the CPUs
    present / usable here."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "simd": {x: x in flags for x in SIMD_FLAGS}, "cpus": os.cpu_count(), "usable": usable}


def cpu_description() -> str:
    facts = cpu_facts()
    simd = ", ".join(x for x, present in facts["simd"].items() if present) or "none"
    return f"{facts['model']}; {facts['cpus']} CPUs ({facts['usable']} usable); SIMD: {simd}"


def spread(values) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=25, help="timed training steps per repetition")
    p.add_argument("--repeats", type=int, default=3, help="repetitions (the table shows the median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed first steps (tracing, XLA compilation)")
    p.add_argument("--data_dir", default=None, help="directory with mnist.npz and/or train_32x32.mat")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {CONFIGS}")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {tuple(MODES)}")
    p.add_argument("--steps_per_execution", type=int, default=1)
    p.add_argument("--intra_op", type=int, default=-1,
                   help="intra-op threads (-1 = what mmali_tf.train picks for the mode, 0 = TensorFlow's default)")
    p.add_argument("--inter_op", type=int, default=-1,
                   help="inter-op threads (-1 = what mmali_tf.train picks for the mode, 0 = TensorFlow's default)")
    p.add_argument("--pipeline_steps", type=int, default=300, help="elements per pipeline-rate repetition")
    p.add_argument("--no_pipeline", action="store_true", help="skip the tf.data rate")
    p.add_argument("--baseline", default=None, help="git ref whose code is also timed, interleaved (before/after)")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._child:
        job = json.loads(args._child)
        sys.path.insert(0, job["repo"])  # the code to time (this checkout or a --baseline one)
        result = child_train(job) if job["kind"] == "train" else child_pipeline(job)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    configs = [c for c in args.configs.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    for c in configs:
        if c not in CONFIGS:
            p.error(f"unknown config {c!r}; choose from {CONFIGS}")
    for m in modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r}; choose from {tuple(MODES)}")
    if min(args.steps, args.repeats, args.steps_per_execution) < 1 or args.warmup < 0:
        p.error("--steps, --repeats and --steps_per_execution must be >= 1, --warmup >= 0")
    dirs = data_dirs(args.data_dir)
    base = {"steps": args.steps, "repeats": args.repeats, "warmup": args.warmup, "dirs": dirs, "repo": REPO,
            "steps_per_execution": args.steps_per_execution, "pipeline_steps": args.pipeline_steps}
    threads = {m: dict(zip(("intra_op", "inter_op"), resolved_threads(MODES[m][0], args.intra_op, args.inter_op)))
               for m in MODES}
    baseline_dir = export_ref(args.baseline) if args.baseline else None

    print(f"mmali_tf training benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}, commit {git_commit()}")
    print(f"CPU: {cpu_description()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"data: MNIST from {dirs['mnist']}, SVHN stand-in from {dirs['svhn']}")
    print(f"timing: median of {args.repeats} windows of {args.steps} steps after {args.warmup} warm-up steps, "
          f"steps_per_execution {args.steps_per_execution}, batch {BATCH}, "
          f"{CALLS_PER_ITERATION * BATCH} tuples/iteration", flush=True)

    if baseline_dir:
        print(f"baseline: {args.baseline} ({git_commit(args.baseline)}), timed right before the current code in "
              "every mode")
    results, before = {}, {}
    for c in configs:
        for m in modes:
            runs = ([("before", before, baseline_dir)] if baseline_dir else []) + [("now", results, REPO)]
            for label, table, repo in runs:
                started = time.perf_counter()
                table[c, m] = r = run_child({**base, **threads[m], "kind": "train", "config": c, "mode": m,
                                             "repo": repo})
                note = (f"FAILED ({r['error'].splitlines()[-1]})" if "error" in r else
                        f"{spread(r['its'])} it/s, load {r['load'][0]:.1f}->{r['load'][1]:.1f}")
                print(f"  done {c:12s} {m:7s} {label:6s} in {time.perf_counter() - started:5.0f} s: {note}",
                      flush=True)
        if not args.no_pipeline:
            results[c, "pipeline"] = run_child({**base, **threads["noxla1"], "kind": "pipeline", "config": c})
            r = results[c, "pipeline"]
            note = f"FAILED ({r['error'].splitlines()[-1]})" if "error" in r else spread(r["rates"]) + " steps/s"
            print(f"  done {c:12s} pipeline: {note}", flush=True)

    report = next((r for r in results.values() if "threads" in r), None)
    if report:
        t = report["threads"]
        print(f"TensorFlow {t['tf']}; env {t['env'] or '{}'}; threads per row as intra-op/inter-op (0 = TF's default)")
    sources = {n: s for r in results.values() for n, s in r.get("sources", {}).items()}
    print("sources: " + "; ".join(f"{n}: {s}" for n, s in sorted(sources.items())))
    print()
    header = (f"{'config':12s} {'mode':17s} {'it/s median (min-max)':>22s} {'ex/s':>6s} {'target':>7s} "
              f"{'vs authors':>10s} {'GFLOP/s issue':>13s} {'GFLOP/it own':>12s} {'GFLOP/s own':>11s} {'CPU-s/it':>8s} "
              f"{'load':>4s} {'threads':>7s}")
    print(header)
    print("-" * len(header))
    mode_names = {"xla1": "XLA, 1 replica", "noxla1": "no XLA, 1 replica", "xla2": "XLA, 2 replicas",
                  "noxla2": "no XLA, 2 replicas"}
    for c in configs:
        best = 0.0
        tables = ([("before", before)] if before else []) + [("now", results)]
        own_flops = {label: next((table[c, m].get("flops") for m in modes if table[c, m].get("flops")), None)
                     for label, table in tables}  # counted in the 1-replica children
        for m in modes:
            for label, table in tables:
                r = table[c, m]
                name = mode_names[m] if label == "now" else f"  before {args.baseline}"[:17]
                if "error" in r:
                    print(f"{c:12s} {name:17s} FAILED: {r['error'].splitlines()[-1]}")
                    continue
                its = statistics.median(r["its"])
                own = own_flops[label]
                own_cols = f"{own / 1e9:12.1f} {its * own / 1e9:11.1f}" if own else f"{'-':>12s} {'-':>11s}"
                ok = "ok" if its >= TARGET_ITS[c] else "MISS"
                load = statistics.mean(r["load"])
                line = (f"{c:12s} {name:17s} {spread(r['its']):>22s} {its * CALLS_PER_ITERATION * BATCH:6.0f} "
                        f"{'>=' + format(TARGET_ITS[c], 'g'):>5s} {ok:<4s} {its / AUTHORS_ITS[c]:9.2f}x "
                        f"{its * ISSUE_GFLOP[c]:13.1f} {own_cols} {statistics.median(r['cpu_s']):8.3f} {load:4.1f} "
                        f"{r['threads']['intra_op']:>3d}/{r['threads']['inter_op']:<3d}")
                prev = before.get((c, m), {}) if label == "now" else {}
                if "its" in prev:
                    line += (f"  {its / statistics.median(prev['its']):.2f}x it/s, "
                             f"{statistics.median(prev['cpu_s']) / statistics.median(r['cpu_s']):.2f}x CPU-s vs before")
                print(line)
                if label == "now":
                    best = max(best, its)
        pr = results.get((c, "pipeline"))
        if pr is not None:
            if "error" in pr:
                print(f"{c:12s} {'tf.data pipeline':17s} FAILED: {pr['error'].splitlines()[-1]}")
            else:
                rate = statistics.median(pr["rates"])
                ratio = rate / best if best else float("nan")
                ok = "ok" if ratio >= PIPELINE_TARGET_RATIO else "MISS"
                print(f"{c:12s} {'tf.data pipeline':17s} {spread(pr['rates']):>22s} steps/s = {ratio:.0f}x the "
                      f"fastest training rate (target >= {PIPELINE_TARGET_RATIO:g}x) {ok}")
    print("-" * len(header))
    print(f"targets (issue 6): it/s >= {TARGET_ITS}; authors' PyTorch it/s {AUTHORS_ITS}; "
          f"GFLOP/s issue = it/s x {ISSUE_GFLOP} (authors' work per iteration); "
          f"GFLOP/it own = our count of the work our step executes; fp32 peak ~182 GFLOP/s; "
          "CPU-s/it = process CPU seconds per iteration (all threads); load = mean 1-min load average of the run")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def git_commit(ref: str = "HEAD") -> str:
    try:
        out = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", ref], capture_output=True, text=True)
        if ref != "HEAD":
            return out.stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "mmali_tf"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (+uncommitted changes in mmali_tf/)" if dirty else "")
    except OSError:
        return "unknown"


def export_ref(ref: str) -> str:
    """The files of git ref ``ref`` in a fresh temporary directory (``git archive``), for --baseline."""
    import tarfile
    import tempfile

    target = tempfile.mkdtemp(prefix="mmali_baseline_")
    archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", ref, "mmali_tf"], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"--baseline {ref}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


if __name__ == "__main__":
    sys.exit(main())
