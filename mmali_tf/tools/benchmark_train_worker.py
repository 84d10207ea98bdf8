"""One measurement of ``benchmark_train``, in a fresh process: ``python -m mmali_tf.tools.benchmark_train_worker JOB``.

``JOB`` is the JSON object the parent writes (kind "train" or "pipeline", the preset, the mode, the resolved thread
counts, steps, repeats, warm-up, the data directories). The worker prints one line ``RESULT <json>`` on stdout and
exits 0, or fails with a traceback on stderr, which the parent reports as that measurement's error. It times the
``mmali_tf`` that ``python -m`` finds first: the parent starts it in the checkout being timed, which for
``--baseline`` is an older commit with this ``mmali_tf/tools/`` copied into it; so it imports only what every such
checkout has (see :mod:`mmali_tf.tools.speed`).
"""

from __future__ import annotations

import json
import os
import sys
import time

from mmali_tf.tools import speed

MODES = {"xla1": (True, 1), "noxla1": (False, 1), "xla2": (True, 2), "noxla2": (False, 2)}
"""Mode name -> (XLA, replicas)."""


def train_rates(job: dict) -> dict:
    """it/s of ``job["repeats"]`` windows of ``job["steps"]`` steps of ``model.fit`` on the real input pipeline,
    after ``job["warmup"]`` untimed steps; CPU seconds per step; the FLOP count of a step (1 replica only)."""
    speed.set_threads(job["intra_op"], job["inter_op"])  # before any TF op
    import keras
    import tensorflow as tf

    from mmali_tf import distribution, training
    from mmali_tf.data.pipeline import paired_batches

    xla, replicas = MODES[job["mode"]]
    config = speed.benchmark_config(job["config"], xla=xla, replicas=replicas,
                                    steps_per_execution=job["steps_per_execution"], intra_op=job["intra_op"],
                                    inter_op=job["inter_op"])
    distribution.configure_devices(config.train)
    strategy = distribution.make_strategy(config.train)
    images, pairs, sources = speed.load_training_data(config, job["dirs"])
    model = training.build_model(config, strategy)
    batch_size = config.train.batch_size
    dataset = paired_batches(images, pairs, batch_size=batch_size, seed=0)
    flops = speed.count_step_flops(model, dataset.element_spec) if replicas == 1 else None

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
                times[done] = (time.perf_counter(), speed.cpu_seconds())

    load_before = os.getloadavg()[0]
    model.fit(dataset, epochs=1, steps_per_epoch=total, verbose=0, callbacks=[Timer()], shuffle=False)
    windows, cpu = [], []
    for r in range(job["repeats"]):
        (t0, c0), (t1, c1) = times[warmup + r * steps], times[warmup + (r + 1) * steps]
        windows.append(steps / (t1 - t0))
        cpu.append((c1 - c0) / steps)
    return {"its": windows, "cpu_s": cpu, "flops": flops, "sources": sources, "batch_size": batch_size,
            "load": [load_before, os.getloadavg()[0]], "threads": speed.thread_report(tf),
            "replicas": strategy.num_replicas_in_sync}


def pipeline_rates(job: dict) -> dict:
    """Steps per second of the ``paired_batches`` input pipeline alone, ``job["repeats"]`` times."""
    speed.set_threads(job["intra_op"], job["inter_op"])
    import tensorflow as tf

    from mmali_tf.data.pipeline import measure_rate, paired_batches

    config = speed.benchmark_config(job["config"], xla=False)
    images, pairs, sources = speed.load_training_data(config, job["dirs"])
    rates = [measure_rate(paired_batches(images, pairs, batch_size=config.train.batch_size, seed=r),
                          steps=job["pipeline_steps"]) for r in range(job["repeats"])]
    return {"rates": rates, "sources": sources, "threads": speed.thread_report(tf)}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("error: usage: python -m mmali_tf.tools.benchmark_train_worker JOB_JSON (started by benchmark_train)",
              file=sys.stderr)
        return 2
    job = json.loads(argv[1])
    result = train_rates(job) if job["kind"] == "train" else pipeline_rates(job)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
