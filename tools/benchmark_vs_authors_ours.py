"""Our side of ``benchmark_vs_authors``: ``python tools/benchmark_vs_authors_ours.py JOB_JSON``.

Started by the parent with this interpreter; speaks the protocol of
:func:`tools.benchmark_vs_authors_theirs.serve`. It builds the model of the preset ``job["config"]`` as
``python -m mmali_tf.train --config=<preset> --config.train.batch_size=<batch_size>`` would on this machine
(:func:`our_config`), writes the pool of paired batches that both sides train on to ``job["pool_path"]``, and times
``train_step`` in one ``tf.function`` (as Keras' ``fit`` runs it: no autograph, XLA as configured) on in-memory
batches. It never imports torch.
"""

from __future__ import annotations

import sys  # noqa: E402  (run as ``python tools/<name>.py``: the checkout's mmali_tf and tools packages)
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools
import sys

from tools import speed
from tools.benchmark_vs_authors_theirs import CALLS, worker_main


def our_config(preset: str, batch_size: int, precision: str = "auto"):
    """The ``ExperimentConfig`` that training would use for ``--config=<preset>`` with the batch size
    ``batch_size`` (and ``precision``): ``mmali_tf.configs.build``, then the "auto" execution settings resolved for
    this machine by ``mmali_tf.distribution.resolve`` (on a CPU-only machine: no XLA and its thread policy), as
    ``training.run`` resolves them."""
    from mmali_tf import configs, distribution

    return distribution.resolve(configs.build(preset, {"train.batch_size": batch_size,
                                                       "train.precision": precision}))


def draw_pool(images: dict, pairs: dict, batch_size: int, seed: int, iterations: int) -> dict[str, list]:
    """``{call: [uint8 [iterations, batch_size, H, W, C] per modality, in the config's order]}``: for pool
    position i the tuples our pipeline feeds step i (``step_tuple_indices``), dealt to the calls in order."""
    import numpy as np

    from mmali_tf.data.pipeline import step_tuple_indices

    names = list(pairs)
    num_tuples = len(pairs[names[0]])
    ids = np.stack([step_tuple_indices(num_tuples, seed, i, len(CALLS) * batch_size) for i in range(iterations)])
    ids = ids.reshape(iterations, len(CALLS), batch_size)
    return {call: [images[n][pairs[n][ids[:, c]]] for n in names] for c, call in enumerate(CALLS)}


def start_ours(job: dict):
    """Build our model as the trainer does, write the shared batch pool, warm up. Returns (info, run)."""
    from mmali_tf import cli  # noqa: F401  (imports TensorFlow without its load-time banners)

    import numpy as np
    import tensorflow as tf

    from mmali_tf import distribution, training
    from mmali_tf.data import pipeline
    from mmali_tf.model import count_parameters

    if CALLS != tuple(pipeline.CALLS):
        raise RuntimeError(f"the pool's calls {CALLS} differ from our pipeline's {pipeline.CALLS}")
    config = our_config(job["config"], job["batch_size"], job.get("precision", "auto"))
    distribution.configure_threads(config.train)  # before TensorFlow runs any op, as training.run does
    distribution.configure_devices(config.train)
    strategy = distribution.make_strategy(config.train)
    images, pairs, sources = speed.load_training_data(config, job["dirs"], random_if_absent=False)
    pool = draw_pool(images, pairs, config.train.batch_size, config.data.seed, job["pool_iterations"])
    np.savez(job["pool_path"], **{f"{call}/{m}": arr for call, arrays in pool.items() for m, arr in enumerate(arrays)})
    names = config.model.names
    batches = [{call: {n: tf.constant(pool[call][m][i].astype(np.float32) / 255.0) for m, n in enumerate(names)}
                for call in CALLS} for i in range(job["pool_iterations"])]

    model = training.build_model(config, strategy)
    # What Keras' fit runs for one step (no autograph, XLA as compiled); the batches are already tensors.
    step = tf.function(model.train_step, jit_compile=config.train.xla, autograph=False)
    positions = itertools.cycle(range(len(batches)))

    def run(iterations: int) -> dict:
        for _ in range(iterations):
            logs = step(batches[next(positions)])
        return {"d_loss": float(logs["d_loss"]), "g_loss": float(logs["g_loss"])}  # mean over the steps so far

    run(job["warmup"])
    d_terms, g_terms = model.loss_term_names()
    spec = tf.nest.map_structure(tf.TensorSpec.from_tensor, batches[0])
    peaks = {dtype: speed.matmul_peak_gflops(dtype) for dtype in ("float32", "bfloat16")} if job.get("peaks") else {}
    report = speed.thread_report(tf)
    info = {"generators": count_parameters(model.generators), "discriminators": count_parameters(model.discriminators),
            "d_terms": len(d_terms), "g_terms": len(g_terms), "xla": config.train.xla,
            "threads": distribution.describe_threads(), "thread_env": report["env"],
            "model": f"modalities {', '.join(names)}", "sources": sources, "precision": config.train.precision,
            "step_gflop": speed.count_step_flops(model, spec) / 1e9, "peak_gflops": peaks}
    return info, run


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv, start_ours, "torch", "python tools/benchmark_vs_authors_ours.py"))
