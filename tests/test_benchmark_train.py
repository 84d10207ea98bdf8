"""tools/benchmark_train.py: its table (ratio to the baseline, share of the peak of the precision trained in), the
SVHN data directory it assembles, and one real lock-step run of the production loop. (Its bad-argument cases are
in tests/test_reliability.py.)"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

from tools import benchmark_train as bench

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("MMALI_DATA_DIR", str(REPO.parent / "shared" / "data"))


def test_table_compares_with_the_baseline_of_the_same_precision_and_uses_its_peak(capsys):
    rows = [{"code": "ours", "requested": "fp32", "precision": "fp32", "rates": [19.0, 20.0, 21.0], "its": 20.0,
             "gflop": 5.0, "others": 0.1},
            {"code": "ours", "requested": "auto", "precision": "bf16", "rates": [30.0], "its": 30.0, "gflop": 5.0,
             "others": 0.0},
            {"code": "baseline", "requested": "fp32", "precision": "fp32", "rates": [16.0], "its": 16.0,
             "gflop": 4.0, "others": 0.3}]
    bench.print_table("multimnist_m2", rows, {"float32": 200.0, "bfloat16": 400.0})
    lines = capsys.readouterr().out.splitlines()
    ours_fp32, ours_auto, base = (line.split("|")[1:-1] for line in lines[4:7])
    assert [c.strip() for c in ours_fp32] == ["ours", "fp32", "20.00 (19.00-21.00)", "5.00", "100", "50%", "1.25x"]
    assert [c.strip() for c in ours_auto] == ["ours", "bf16 (auto)", "30.00 (30.00-30.00)", "5.00", "150", "38%", ""]
    assert [c.strip() for c in base][-1] == ""
    assert "up to 0.30 cores" in lines[-1]


def test_mnist_svhn_data_is_mnist_beside_the_svhn_files(tmp_path):
    svhn = tmp_path / "svhn"
    svhn.mkdir()
    (svhn / "train_32x32.mat").write_bytes(b"x")
    (svhn / "test_32x32.mat").write_bytes(b"y")
    before = set(flags.FLAGS)
    if "svhn_dir" not in flags.FLAGS:
        bench.define_flags()  # the tool's flags, removed again below: they share names with the training flags
    flags.FLAGS(["prog", f"--data_dir={DATA_DIR}", f"--svhn_dir={svhn}"])
    try:
        both = Path(bench.data_dir_for("mnist_svhn", tmp_path))
        assert sorted(p.name for p in both.iterdir()) == ["mnist.npz", "test_32x32.mat", "train_32x32.mat"]
        assert (both / "mnist.npz").resolve() == (Path(DATA_DIR) / "mnist.npz").resolve()
        assert bench.data_dir_for("multimnist_m2", tmp_path) == DATA_DIR
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


def test_a_short_run_of_the_production_loop_against_a_baseline(tmp_path):
    """Real workers: this checkout and its HEAD, one window each; the table has both rows and a ratio."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark_train.py"), "--configs=multimnist_m2", "--precisions=fp32",
         "--baseline=HEAD", "--windows=1", "--steps=2", "--warmup=1", "--nopeaks", f"--data_dir={DATA_DIR}"],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ours") or line.startswith("| baseline")]
    assert len(rows) == 2
    assert rows[0].rstrip(" |").endswith("x") and float(rows[0].split("|")[3].split()[0]) > 0
