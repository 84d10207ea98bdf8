"""The authors' side of ``tools/equal_budget.py``: train their model for a number of iterations and save its weights.

    <torch python> tools/equal_budget_theirs.py JOB_JSON

Runs in the torch interpreter with ``PYTHONPATH`` = their work tree (6b5d/mmali), like the worker of
``benchmark_vs_authors``, whose parser of their training script it loads by path (that file imports only the
standard library). The model, its optimizers and the loop body are their script's own statements with their README
options; only the data comes from us: ``job["data"]`` (an ``.npz`` with ``images/<i>`` uint8 NHWC and
``pairs/<i>`` tuple indices per modality in their sorted-key order) is served in the order of our pipeline
(``mmali_tf.data.pipeline.step_tuple_indices``, re-implemented below on numpy alone), four batches per iteration.
Writes ``job["out"]`` (``.npz``: ``<their state_dict key>`` of ``model``, float32, torch layout) and prints one JSON
line with the seconds and the last losses.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
THEIRS = os.path.join(HERE, "benchmark_vs_authors_theirs.py")


def _their_side():
    spec = importlib.util.spec_from_file_location("benchmark_vs_authors_theirs", THEIRS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def epoch_order(num_tuples: int, seed: int, epoch: int):
    import numpy as np

    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(num_tuples))


def step_tuple_indices(num_tuples: int, seed: int, step: int, per_step: int):
    """The tuple ids of ``step`` as our pipeline draws them (a copy of mmali_tf.data.pipeline's function)."""
    import numpy as np

    start, out, filled = step * per_step, np.empty(per_step, np.int64), 0
    while filled < per_step:
        epoch, offset = divmod(start + filled, num_tuples)
        take = min(per_step - filled, num_tuples - offset)
        out[filled:filled + take] = epoch_order(num_tuples, seed, epoch)[offset:offset + take]
        filled += take
    return out


def main(job: dict) -> None:
    import numpy as np
    import torch

    side = _their_side()
    torch.set_num_threads(job["torch_threads"] or len(os.sched_getaffinity(0)))
    side.stub_missing_modules()
    script_name, readme_argv = side.THEIR_RUNS[job["config"]]
    script = side.parse_their_script(os.path.join(job["reference_dir"], script_name))
    argv = readme_argv + ["--batch_size", str(job["batch_size"]), "--max_iter", str(job["iterations"])]
    with np.load(job["data"]) as data:
        num = len([k for k in data.files if k.startswith("images/")])
        images = [data[f"images/{i}"] for i in range(num)]
        pairs = [data[f"pairs/{i}"] for i in range(num)]
    num_tuples, batch, calls = len(pairs[0]), job["batch_size"], 4

    def batches():
        for step in itertools.count():
            ids = step_tuple_indices(num_tuples, job["data_seed"], step, calls * batch).reshape(calls, batch)
            for c in range(calls):  # ToTensor: float32 NCHW in [0, 1]
                yield [torch.from_numpy(images[m][pairs[m][ids[c]]]).permute(0, 3, 1, 2).float().div(255)
                       for m in range(num)]

    namespace = {"__name__": "their_training_script", "__builtins__": __builtins__}
    exec(script.imports, namespace)
    namespace["opt"] = namespace["options"].parser.parse_args(argv)
    exec(script.constants, namespace)
    namespace["paired_dataloader"] = batches()
    torch.manual_seed(job["seed"])
    np.random.seed(job["seed"])
    exec(script.construction, namespace)
    started = time.perf_counter()
    for n_iter in range(job["iterations"]):
        namespace["n_iter"] = n_iter
        exec(script.loop_body, namespace)
        if (n_iter + 1) % 500 == 0:
            print(f"theirs: {n_iter + 1}/{job['iterations']} ({(n_iter + 1) / (time.perf_counter() - started):.1f} "
                  "it/s)", file=sys.stderr, flush=True)
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in namespace["model"].state_dict().items()}
    np.savez(job["out"], **state)
    print(json.dumps({"seconds": time.perf_counter() - started, "d_loss": float(namespace["d_loss"]),
                      "g_loss": float(namespace["g_loss"])}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("error: usage: <torch python> tools/equal_budget_theirs.py JOB_JSON (started by tools/equal_budget.py)",
              file=sys.stderr)
        sys.exit(2)
    main(json.loads(sys.argv[1]))
