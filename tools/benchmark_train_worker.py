"""One side of ``tools/benchmark_train.py``: ``python tools/benchmark_train_worker.py JOB_JSON``.

Times the production loop of the ``mmali_tf`` on ``PYTHONPATH`` (this checkout's, or an older commit's extracted
by the parent): the preset built as ``python -m mmali_tf.train`` builds it, its "auto" settings resolved by that
checkout's own ``distribution.resolve`` (its thread policy and precision rules), the real tf.data pipeline and
``training.make_step_function``; after each step the scalars are read back as the training loop reads them. Speaks
the worker protocol of ``tools/benchmark_vs_authors_theirs.py`` (``{"ready": info}``, then one ``{"window": ...}``
per ``{"run": n}``). With ``job["peaks_only"]`` it measures the machine's matmul peaks instead (TensorFlow's
default threads: every core).

This file and the helpers it loads by path (``speed.py``, ``benchmark_vs_authors_theirs.py``) import only the
standard library at load, so the ``mmali_tf`` that is timed is whichever ``PYTHONPATH`` names.
"""

from __future__ import annotations

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", os.path.join(HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


speed = _load("speed")
protocol = _load("benchmark_vs_authors_theirs")


def start(job: dict):
    """Build the model and the pipeline as training does, warm up. Returns (info, run)."""
    from mmali_tf import cli  # noqa: F401  (TensorFlow without its load-time banners)

    if job.get("peaks_only"):
        peaks = {dtype: speed.matmul_peak_gflops(dtype, size=2048) for dtype in ("float32", "bfloat16")}
        return {"peak_gflops": peaks, "cpu": speed.cpu_description()}, lambda steps: {"d_loss": 0.0, "g_loss": 0.0}

    import tensorflow as tf

    from mmali_tf import configs, distribution, training, training_data

    config = configs.build(job["config"], {"train.precision": job["precision"], "data.data_dir": job["data_dir"]})
    config = distribution.resolve(config)
    distribution.configure_threads(config.train)
    strategy = tf.distribute.get_strategy()
    splits = training_data.load_modalities(config, "train")
    pairs = training_data.make_pairs(config, splits, "train")
    model = training.build_model(config, strategy)
    dataset = training_data.training_pipeline(config, splits, pairs, 0)
    iterator = iter(dataset)
    step_fn = training.make_step_function(model, strategy, 1)

    def run(steps: int) -> dict:
        for _ in range(steps):
            scalars = {k: v.numpy() for k, v in step_fn(iterator).items()}  # as the training loop reads them
            int(model.d_optimizer.iterations.numpy())
        return {"d_loss": float(scalars["d_loss"]), "g_loss": float(scalars["g_loss"])}

    run(job["warmup"])
    sources = {name: split.source for name, split in splits.items()}
    info = {"precision": config.train.precision, "threads": distribution.describe_threads(),
            "step_gflop": speed.count_step_flops(model, dataset.element_spec) / 1e9, "sources": sources}
    return info, run


if __name__ == "__main__":
    sys.exit(protocol.worker_main(sys.argv, start, "torch", "python tools/benchmark_train_worker.py"))
