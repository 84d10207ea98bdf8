"""The authors' side of ``benchmark_vs_authors``, and the worker protocol both sides speak.

    <torch python> tools/benchmark_vs_authors_theirs.py JOB_JSON

Run by the torch interpreter (``--torch_python``), by its path, with ``PYTHONPATH`` = their work tree, so that their
``options``, ``models`` and ``utils`` import as their script imports them. That interpreter has neither TensorFlow
nor absl nor ``mmali_tf``'s other dependencies, so this file stands alone: at load it imports only the standard
library (numpy and torch inside :func:`start_theirs`), and nothing of ``mmali_tf``. The parent imports it for the
names of their files and runs; our worker (``tools/benchmark_vs_authors_ours.py``) imports
:func:`worker_main`.

Protocol (:func:`serve`): the worker builds its side and warms up, writes ``{"ready": info}`` as one JSON line on
stdout, then answers each ``{"run": n}`` line on stdin with ``{"window": {"seconds", "cpu_seconds", "d_loss",
"g_loss"}}`` (the wall and CPU time of n iterations, the losses read back as Python floats) until ``{"quit": true}``
or the end of stdin; on any exception it writes ``{"error": message}`` and exits 1 (the traceback goes to stderr,
the worker's log). Nothing else reaches stdout.

What of their script runs: see the module docstring of ``tools/benchmark_vs_authors.py``, "Their side".
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import itertools
import json
import os
import sys
import time
import traceback
import types
from collections.abc import Callable

# The 4 paired batches of an iteration, in the order both loops consume them (our mmali_tf.data.pipeline.CALLS;
# their four next(paired_dataloader) per iteration).
CALLS = ("d_unimodal", "d_joint", "g_unimodal", "g_joint")


# Their training script and README command line (their README, MultiMNIST with --n_modalities 2 / 4).
_README_MULTIMNIST = ["--max_iter", "250000", "--style_dim", "10", "--latent_dim", "20", "--lambda_unimodal", "0.1"]
THEIR_RUNS = {
    "mnist_svhn": ("train_mmali_mnist_svhn.py",
                   ["--max_iter", "250000", "--style_dim", "10", "--latent_dim", "20", "--use_all",
                    "--lambda_unimodal", "0.1", "--lambda_x_rec", "0.05", "--lambda_s_rec", "0.05",
                    "--lambda_c_rec", "0.05", "--joint_rec", "--name", "exp_mnist_svhn"]),
    "multimnist_m2": ("train_mmali_multimnist.py", _README_MULTIMNIST + ["--n_modalities", "2", "--name", "jsd2_mod2"]),
    "multimnist_m4": ("train_mmali_multimnist.py", _README_MULTIMNIST + ["--n_modalities", "4", "--name", "jsd2_mod4"]),
}
THEIR_REQUIRED_FILES = ("options.py", "utils.py", "models/__init__.py", "models/mmali/factor2.py", "models/mnist.py",
                        "models/svhn.py", "models/mnist_svhn.py", "models/multimnist.py",
                        "train_mmali_mnist_svhn.py", "train_mmali_multimnist.py")


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (as ``mmali_tf.tools.speed.cpu_seconds``, which this
    file cannot import)."""
    t = os.times()
    return t.user + t.system


# ------------------------------------------------------------------------------------------------ protocol
def serve(start: Callable[[dict], tuple[dict, Callable[[int], dict]]], job: dict, foreign: str) -> int:
    """A worker's life (the protocol of this module's docstring): ``start(job)`` builds and warms up its side and
    returns ``(info, run)``, ``run(n)`` does n iterations and returns the losses. ``foreign`` is the framework this
    worker must not have imported (it is a failure if it has). Returns the exit status."""
    channel = os.fdopen(os.dup(1), "w")  # replies only: anything else written to stdout goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    try:
        info, run = start(job)
        if foreign in sys.modules:
            raise RuntimeError(f"this worker imported {foreign}")
        send({"ready": info})
        for line in sys.stdin:
            message = json.loads(line)
            if message.get("quit"):
                break
            steps = int(message["run"])
            started, cpu_started = time.perf_counter(), cpu_seconds()
            losses = run(steps)
            send({"window": {"seconds": time.perf_counter() - started,
                             "cpu_seconds": cpu_seconds() - cpu_started, **losses}})
        return 0
    except Exception as exc:  # reported to the parent as one line; the traceback goes to the worker's log
        traceback.print_exc()
        try:
            send({"error": f"{type(exc).__name__}: {exc}"})
        except OSError:
            pass
        return 1


def worker_main(argv: list[str], start, foreign: str, program: str) -> int:
    """A worker's command line, ``program JOB_JSON``: :func:`serve` the job; exit status 2 and one usage line for
    any other command line."""
    if len(argv) != 2:
        print(f"error: usage: {program} JOB_JSON (started by python -m mmali_tf.tools.benchmark_vs_authors)",
              file=sys.stderr)
        return 2
    return serve(start, json.loads(argv[1]), foreign)


# ------------------------------------------------------------------------------------------------ their side
SKIPPED_IMPORTS = ("torchvision", "torch.utils.tensorboard", "datasets")  # their data loading and logging only
SCRIPT_CONSTANTS = {"mnist_img_shape", "svhn_channels", "key_template", "key_mnist", "key_svhn", "device"}
# Imported at the top of their utils.py, used only by its CCA helpers (CUB evaluation).
OPTIONAL_IMPORTS = {"scipy.linalg": ("eig",), "skimage.filters": ("threshold_yen",)}


@dataclasses.dataclass
class TheirScript:
    """The parts of their training script that the worker runs, compiled with their file's line numbers."""

    imports: types.CodeType
    constants: types.CodeType
    construction: types.CodeType
    loop_body: types.CodeType
    construction_lines: str  # e.g. "160-207, 224"
    loop_lines: str
    left_out: str  # statements of the loop body not run, with their lines


def _line_ranges(body: list[ast.stmt], chosen: list[int], label=lambda node: "") -> str:
    """"a-b, c-d" for the statements ``body[i]``, i in ``chosen``: consecutive statements with the same label
    (e.g. why they are left out) merge into one range, followed by " (label)" where the label is not empty."""
    runs = []  # [first index, last index, label]
    for i in chosen:
        if runs and runs[-1][1] == i - 1 and runs[-1][2] == label(body[i]):
            runs[-1][1] = i
        else:
            runs.append([i, i, label(body[i])])
    out = []
    for first, last, text in runs:
        start, end = body[first].lineno, body[last].end_lineno
        out.append((f"{start}-{end}" if end != start else f"{start}") + (f" ({text})" if text else ""))
    return ", ".join(out)


def _left_out_of_loop(node: ast.stmt) -> str | None:
    """Why a statement of their loop body is not run (printing, TensorBoard, checkpoints/samples/evaluation), or
    None if it is run."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        if isinstance(func, ast.Name) and func.id == "print":
            return "print"
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "writer":
            return f"writer.{func.attr}"
    if isinstance(node, ast.If):
        test = ast.unparse(node.test)
        if "opt.save_interval" in test:
            return "save_interval block"
        if "opt.eval_interval" in test:
            return "evaluation block"
    return None


def parse_their_script(path: str) -> TheirScript:
    """Split their training script into what the worker runs (see the module docstring, "Their side")."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)

    def compiled(nodes):
        return compile(ast.Module(body=list(nodes), type_ignores=[]), path, "exec")

    def skipped(node):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        return any(m == s or m.startswith(s + ".") for m in modules for s in SKIPPED_IMPORTS)

    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and not skipped(n)]
    constants = [n for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
                 and isinstance(n.targets[0], ast.Name) and n.targets[0].id in SCRIPT_CONSTANTS]
    main = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"), None)
    body = main.body if main else []
    source = [ast.unparse(n) for n in body]
    try:
        first = next(i for i, n in enumerate(body)
                     if isinstance(n, ast.If) and ast.unparse(n.test) == "opt.deterministic")
        last = next(i for i, s in enumerate(source) if s.startswith("optimizer_D = "))
        loop = next(i for i, n in enumerate(body) if isinstance(n, ast.For) and ast.unparse(n.target) == "n_iter")
    except StopIteration:
        raise RuntimeError(f"{path}: not the structure this benchmark expects (main() with 'if opt.deterministic:', "
                           "'optimizer_D = ...' and 'for n_iter in ...')") from None
    built = list(range(first, last + 1)) + [i for i in range(last + 1, loop) if source[i] == "model.train()"]
    construction = [body[i] for i in built]
    loop_body = body[loop].body
    kept_at = [i for i, n in enumerate(loop_body) if _left_out_of_loop(n) is None]
    dropped_at = [i for i, n in enumerate(loop_body) if _left_out_of_loop(n) is not None]
    kept = [loop_body[i] for i in kept_at]
    kept_source = "\n".join(ast.unparse(n) for n in kept)
    for needed in ("optimizer_D.step()", "optimizer_G.step()", "model_ema.lerp("):
        if needed not in kept_source:
            raise RuntimeError(f"{path}: the loop body run would lack {needed}")
    return TheirScript(imports=compiled(imports), constants=compiled(constants), construction=compiled(construction),
                       loop_body=compiled(kept), construction_lines=_line_ranges(body, built),
                       loop_lines=_line_ranges(loop_body, kept_at),
                       left_out=_line_ranges(loop_body, dropped_at, _left_out_of_loop))


def stub_missing_modules() -> list[str]:
    """Put a stub in ``sys.modules`` for each of :data:`OPTIONAL_IMPORTS` that cannot be imported; its functions
    raise if called. Returns the stubbed names."""
    stubbed = []
    for module_name, attributes in OPTIONAL_IMPORTS.items():
        try:
            importlib.import_module(module_name)
            continue
        except ImportError:
            pass
        parts = module_name.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                if depth > 1:
                    setattr(sys.modules[".".join(parts[:depth - 1])], parts[depth - 1], sys.modules[name])
        for attribute in attributes:
            def unavailable(*args, _name=f"{module_name}.{attribute}", **kwargs):
                raise RuntimeError(f"{_name} is a stub of the benchmark (the package is not installed)")
            setattr(sys.modules[module_name], attribute, unavailable)
        stubbed.append(", ".join(f"{module_name}.{a}" for a in attributes))
    return stubbed


def start_theirs(job: dict):
    """Build their model by running their script's own statements, load the shared pool, warm up.
    Returns (info, run)."""
    import numpy as np
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(job["torch_threads"] or usable)
    reference_dir = job["reference_dir"]
    if os.path.realpath(reference_dir) not in map(os.path.realpath, sys.path):
        raise RuntimeError(f"their work tree {reference_dir} is not on sys.path (start this worker with "
                           "PYTHONPATH=<their work tree>)")
    stubs = stub_missing_modules()
    script_name, readme_argv = THEIR_RUNS[job["config"]]
    script = parse_their_script(os.path.join(reference_dir, script_name))
    argv = readme_argv + ["--batch_size", str(job["batch_size"])]

    namespace = {"__name__": "their_training_script", "__builtins__": __builtins__}
    exec(script.imports, namespace)
    namespace["opt"] = namespace["options"].parser.parse_args(argv)
    exec(script.constants, namespace)
    with np.load(job["pool_path"]) as pool:
        count = len([k for k in pool.files if k.startswith(CALLS[0] + "/")])
        arrays = {k: pool[k] for k in pool.files}
    # What their DataLoader yields: per modality (sorted keys = our config order) float32 NCHW in [0, 1]
    # (ToTensor), one list per next(paired_dataloader): iteration by iteration, the calls in CALLS order.
    batches = [[torch.from_numpy(arrays[f"{call}/{m}"][i]).permute(0, 3, 1, 2).float().div(255).contiguous()
                for m in range(count)] for i in range(job["pool_iterations"]) for call in CALLS]
    namespace["paired_dataloader"] = itertools.cycle(batches)
    torch.manual_seed(0)
    exec(script.construction, namespace)
    iteration = itertools.count()

    def run(iterations: int) -> dict:
        for _ in range(iterations):
            namespace["n_iter"] = next(iteration)
            exec(script.loop_body, namespace)
        return {"d_loss": float(namespace["d_loss"]), "g_loss": float(namespace["g_loss"])}

    run(job["warmup"])
    model = namespace["model"]
    info = {"generators": sum(p.numel() for p in model.generators.parameters()),
            "discriminators": sum(p.numel() for p in model.discriminators.parameters()),
            "d_terms": len(namespace["d_losses_iter_avg"]), "g_terms": len(namespace["g_losses_iter_avg"]),
            "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
                        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}},
            "device": str(namespace["device"]), "script": script_name, "argv": argv, "stubs": stubs,
            "construction_lines": script.construction_lines, "loop_lines": script.loop_lines,
            "left_out": script.left_out}
    return info, run


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv, start_theirs, "tensorflow", "<torch python> benchmark_vs_authors_theirs.py"))
