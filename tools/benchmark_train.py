"""Speed of the production training loop: it/s, GFLOP/s and the share of the machine's matmul peak, optionally
against an older commit in the same run.

    python tools/benchmark_train.py [--configs=mnist_svhn,multimnist_m2,multimnist_m4] [--precisions=fp32,auto]
        [--baseline=REF] [--windows=3] [--steps=20] [--warmup=5] [--data_dir=DIR] [--svhn_dir=DIR] [--nopeaks]

What is timed is what ``python -m mmali_tf.train`` runs (``tools/benchmark_train_worker.py``): the preset, its
"auto" settings resolved by the timed code's own rules (thread policy, and for ``--precisions=auto`` its precision
rule), the real tf.data pipeline, ``training.make_step_function``, and the scalars read back after every step. One
worker process per (code, precision) and configuration, all alive at once, timed in lock-step windows of
``--steps`` iterations in rotating order, so that every side sees the same machine load; the table shows the median
window (min-max). ``--baseline=REF`` also times the ``mmali_tf`` of git ref REF (extracted to a temporary
directory) with the same precisions; the last column is our median over the baseline's.

Work and utilization: GFLOP per iteration is our own count of the ops the traced step executes
(``speed.count_step_flops``); GFLOP/s = that times it/s; the matmul peaks (float32 and bfloat16, 2048x2048, every
core) are measured in the same run by a worker of their own, and "share" is GFLOP/s over the peak of the precision
trained in. FLOP counts of different code differ (e.g. shared image products), so compare it/s between codes and
shares within one code.

Data: MNIST (``mnist.npz``) from ``--data_dir`` (default ``$MMALI_DATA_DIR``); for ``mnist_svhn`` the SVHN files from
``--svhn_dir`` (e.g. the stand-in of ``python -m mmali_tf.tools.make_svhn_standin``), linked beside MNIST in a
temporary directory.
"""

from __future__ import annotations

import sys  # noqa: E402  (run as ``python tools/<name>.py``: the checkout's mmali_tf and tools packages)
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402

from absl import flags  # noqa: E402

from mmali_tf import cli  # noqa: E402
from mmali_tf.errors import MMALIError  # noqa: E402
from mmali_tf.tools import flag_checks  # noqa: E402
from tools import repository, speed  # noqa: E402
from tools.benchmark_vs_authors import Worker, machine_busy_seconds  # noqa: E402

F = flags.FLAGS
WORKER = Path(__file__).resolve().parent / "benchmark_train_worker.py"
def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_list("configs", list(speed.BENCHMARK_PRESETS), "Presets to time.")
    flags.DEFINE_list("precisions", ["fp32", "auto"], "Precisions: fp32, bf16 or auto (the timed code's own rule).")
    flags.DEFINE_string("baseline", None, "Git ref whose mmali_tf is timed too (e.g. 5a2e815).")
    flags.DEFINE_integer("windows", 3, "Timed windows per side.", lower_bound=1)
    flags.DEFINE_integer("steps", 20, "Iterations per window.", lower_bound=1)
    flags.DEFINE_integer("warmup", 5, "Untimed iterations first (tracing).", lower_bound=1)
    flags.DEFINE_string("data_dir", None, "Directory with mnist.npz (default $MMALI_DATA_DIR).")
    flags.DEFINE_string("svhn_dir", None, "Directory with SVHN's (or the stand-in's) *_32x32.mat, for mnist_svhn.")
    flags.DEFINE_bool("peaks", True, "Measure the matmul peaks (float32 and bfloat16) for the utilization columns.")
    flag_checks.require_names("configs", list(speed.BENCHMARK_PRESETS) + ["multimnist_m3", "quickstart"])
    flag_checks.require_names("precisions", ("fp32", "bf16", "auto"))
    flag_checks.require_existing_dir("data_dir")
    flag_checks.require_existing_dir("svhn_dir")



def data_dir_for(config: str, scratch: Path) -> str:
    mnist = F.data_dir or os.environ.get("MMALI_DATA_DIR")
    if not mnist or not os.path.isfile(os.path.join(mnist, "mnist.npz")):
        raise MMALIError("give --data_dir with mnist.npz (or set MMALI_DATA_DIR)")
    if config != "mnist_svhn":
        return mnist
    if not F.svhn_dir or not os.path.isfile(os.path.join(F.svhn_dir, "train_32x32.mat")):
        raise MMALIError("mnist_svhn needs --svhn_dir with train_32x32.mat (python -m mmali_tf.tools.make_svhn_standin "
                         "--out_dir=DIR writes the stand-in)")
    both = scratch / "mnist_svhn_data"
    both.mkdir(exist_ok=True)
    for source in (Path(mnist) / "mnist.npz", *Path(F.svhn_dir).glob("*_32x32.mat")):
        if not (both / source.name).exists():
            (both / source.name).symlink_to(source.resolve())
    return str(both)


def start(side: str, config: str, job: dict, pythonpath: str, scratch: Path) -> Worker:
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONSAFEPATH": "1"}
    log = scratch / f"{side.replace(' ', '_').replace(':', '_')}_{config}.log"
    return Worker(side, config, [sys.executable, str(WORKER), json.dumps(job)], str(log), env=env)


def time_config(config: str, codes: dict[str, str], scratch: Path) -> list[dict]:
    """Lock-step windows of every (code, precision) side of one configuration; one result row per side."""
    workers, rows = {}, []
    try:
        for code, pythonpath in codes.items():
            for precision in F.precisions:
                job = {"config": config, "precision": precision, "warmup": F.warmup,
                       "data_dir": data_dir_for(config, scratch)}
                side = f"{code} {precision}"
                workers[side] = start(side, config, job, pythonpath, scratch)
        infos = {side: worker.request()["ready"] for side, worker in workers.items()}
        windows = {side: [] for side in workers}
        order = list(workers)
        for w in range(F.windows):
            for side in order[w % len(order):] + order[:w % len(order)]:
                busy = machine_busy_seconds()
                window = workers[side].request({"run": F.steps})["window"]
                after = machine_busy_seconds()
                window["others"] = (max(0.0, after - busy - window["cpu_seconds"]) / window["seconds"]
                                    if busy is not None and after is not None else None)
                windows[side].append(window)
        for worker in workers.values():
            worker.close()
    finally:
        for worker in workers.values():
            worker.kill()
    for side, info in infos.items():
        rates = [F.steps / w["seconds"] for w in windows[side]]
        others = [w["others"] for w in windows[side] if w["others"] is not None]
        rows.append({"side": side, "code": side.split()[0], "requested": side.split()[1],
                     "precision": info["precision"], "threads": info["threads"], "rates": rates,
                     "its": statistics.median(rates), "gflop": info["step_gflop"],
                     "others": max(others) if others else None})
    return rows


def print_table(config: str, rows: list[dict], peaks: dict) -> None:
    print(f"\n{config}")
    print("| code | precision | it/s median (min-max) | GFLOP/it | GFLOP/s | share of peak | vs baseline |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        gflops = row["gflop"] * row["its"]
        peak = peaks.get("bfloat16" if row["precision"] == "bf16" else "float32")
        share = f"{100 * gflops / peak:.0f}%" if peak else "-"
        base = next((r for r in rows if r["code"] == "baseline" and r["requested"] == row["requested"]), None)
        ratio = f"{row['its'] / base['its']:.2f}x" if base and row["code"] != "baseline" else ""
        precision = row["precision"] + (" (auto)" if row["requested"] == "auto" else "")
        print(f"| {row['code']} | {precision} | {speed.spread(row['rates'])} | {row['gflop']:.2f} | {gflops:.0f} | "
              f"{share} | {ratio} |")
    busiest = max((r["others"] for r in rows if r["others"] is not None), default=None)
    if busiest is not None:
        print(f"(other processes kept up to {busiest:.2f} cores busy during a window)")


def main(argv) -> None:
    del argv
    root = repository.require_repository("tools/benchmark_train.py")
    with tempfile.TemporaryDirectory(prefix="mmali_benchmark_") as tmp:
        scratch = Path(tmp)
        codes = {"ours": str(root)}
        if F.baseline:
            commit = repository.commit_of(root, F.baseline)
            if commit is None:
                raise MMALIError(f"--baseline {F.baseline}: no such commit")
            repository.extract(root, commit, ["mmali_tf"], scratch / "baseline")
            codes["baseline"] = str(scratch / "baseline")
        print(f"CPU: {speed.cpu_description()}")
        print(f"ours: {repository.describe_head(root)}" + (f"; baseline: {F.baseline} ({commit})"
                                                          if F.baseline else ""))
        peaks = {}
        if F.peaks:
            peak_worker = start("peaks", "peaks", {"peaks_only": True}, str(root), scratch)
            try:
                peaks = peak_worker.request()["ready"]["peak_gflops"]
            finally:
                peak_worker.close()
            print(f"matmul peaks (2048x2048, every core): float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 "
                  f"{peaks['bfloat16']:.0f} GFLOP/s")
        print(f"{F.windows} windows of {F.steps} iterations per side after {F.warmup} warm-up iterations")
        for config in F.configs:
            print_table(config, time_config(config, codes, scratch), peaks)
            sys.stdout.flush()


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
