"""tools/benchmark_train.py: its table (ratio to the baseline, share of the peak of the precision trained in), the
SVHN data directory it assembles, and one real lock-step run of the production loop. (Its bad-argument cases are
in tests/test_reliability.py.)"""

import json
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


SVHN_DIR_CHECK = """
import json, sys
from pathlib import Path
from absl import flags
from tools import benchmark_train as bench
bench.define_flags()
flags.FLAGS(["prog", "--data_dir=" + sys.argv[1], "--svhn_dir=" + sys.argv[2]])
scratch = Path(sys.argv[3])
both = Path(bench.data_dir_for("mnist_svhn", scratch))
print(json.dumps({"files": sorted(p.name for p in both.iterdir()), "mnist": str((both / "mnist.npz").resolve()),
                  "m2": bench.data_dir_for("multimnist_m2", scratch)}))
"""


def test_mnist_svhn_data_is_mnist_beside_the_svhn_files(tmp_path):
    """In a fresh interpreter: the tool's flags share names with the training flags other tests define."""
    svhn = tmp_path / "svhn"
    svhn.mkdir()
    (svhn / "train_32x32.mat").write_bytes(b"x")
    (svhn / "test_32x32.mat").write_bytes(b"y")
    done = subprocess.run([sys.executable, "-c", SVHN_DIR_CHECK, DATA_DIR, str(svhn), str(tmp_path)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["files"] == ["mnist.npz", "test_32x32.mat", "train_32x32.mat"]
    assert found["mnist"] == str((Path(DATA_DIR) / "mnist.npz").resolve())
    assert found["m2"] == DATA_DIR


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
