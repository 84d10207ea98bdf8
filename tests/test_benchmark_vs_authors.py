"""python tools/benchmark_vs_authors.py without torch: the statistics of its tables, the setup checks that
need no torch, and that their worker stands alone. (Its bad-argument cases are in tests/test_tools.py.)"""

import importlib.util
import os
import subprocess
import sys

import pytest

from tools import benchmark_vs_authors as tool
from tools import benchmark_vs_authors_theirs as theirs_worker
from tools import speed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def windows(seconds, cpu=1.0):
    return [{"seconds": s, "cpu_seconds": cpu} for s in seconds]


def fake_their_tree(path):
    for name in tool.THEIR_REQUIRED_FILES:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("")
    return str(path)


def test_reference_dir_check(tmp_path):
    tool.check_reference_dir(fake_their_tree(tmp_path / "theirs"))
    os.remove(tmp_path / "theirs" / "models" / "mmali" / "factor2.py")
    with pytest.raises(tool.SetupError, match="missing models/mmali/factor2.py"):
        tool.check_reference_dir(str(tmp_path / "theirs"))


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="this interpreter has torch")
def test_torch_python_without_torch():
    with pytest.raises(tool.SetupError, match="cannot import torch"):
        tool.probe_torch(sys.executable)


def test_their_worker_imports_only_the_standard_library():
    """The torch interpreter runs that file alone: nothing of mmali_tf, TensorFlow, absl, numpy or torch at load."""
    code = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='loaded'); "
            "print(sorted(k for k in ('mmali_tf', 'tensorflow', 'absl', 'numpy', 'torch') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-c", code, theirs_worker.__file__], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["benchmark_vs_authors_theirs", "benchmark_vs_authors_ours"])
def test_workers_refuse_a_bad_command_line(module):
    if module.endswith("theirs"):  # run by its path, as the parent runs it
        cmd = [sys.executable, "-I", theirs_worker.__file__]
    else:
        cmd = [sys.executable, os.path.join(REPO, "tools", f"{module}.py"), "{}", "extra"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: usage:") and len(proc.stderr.splitlines()) == 1


def test_their_worker_environment_puts_their_tree_on_the_path(tmp_path):
    env = tool.their_environment(str(tmp_path))
    assert env["PYTHONPATH"] == str(tmp_path) and env["PYTHONSAFEPATH"] == "1"
    (tmp_path / "options.py").write_text("parser = 'theirs'\n")
    code = "import options; print(options.parser)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "theirs"


def test_compare_medians_ratios_and_hours():
    # 10 iterations per window: ours 5, 4, 2 it/s; theirs 2, 2, 1 it/s.
    c = tool.compare(10, windows([2.0, 2.5, 5.0]), windows([5.0, 5.0, 10.0]))
    assert c["ours_its"] == pytest.approx([5.0, 4.0, 2.0])
    assert c["ours_median"] == pytest.approx(4.0) and c["theirs_median"] == pytest.approx(2.0)
    assert c["ratio_of_medians"] == pytest.approx(2.0)
    assert c["median_pair_ratio"] == pytest.approx(2.0)  # pair ratios 2.5, 2.0, 2.0
    assert c["ours_hours"] == pytest.approx(250_000 / 4.0 / 3600)
    assert c["theirs_hours"] == pytest.approx(250_000 / 2.0 / 3600)


def test_pair_ratio_differs_from_ratio_of_medians():
    c = tool.compare(1, windows([1.0, 0.5]), windows([1.0, 2.0]))  # ours 1, 2 it/s; theirs 1, 0.5 it/s
    assert c["ratio_of_medians"] == pytest.approx(1.5 / 0.75)
    assert c["median_pair_ratio"] == pytest.approx((1.0 + 4.0) / 2)


def test_compare_needs_paired_windows():
    with pytest.raises(ValueError):
        tool.compare(10, windows([1.0, 2.0]), windows([1.0]))
    with pytest.raises(ValueError):
        tool.compare(10, [], [])


def test_hours_for():
    assert speed.hours_for(250_000, 250_000 / 3600) == pytest.approx(1.0)
    assert speed.hours_for(36_000, 2.0) == pytest.approx(5.0)


def test_window_table_lines():
    ours = windows([2.0, 2.5], cpu=3.0)
    theirs = windows([5.0, 4.0], cpu=8.0)
    ours[0]["others_cores"] = 0.15  # below the busy-machine warning
    lines = tool.window_table(10, ours, theirs)
    assert len(lines) == 1 + 2 + 3  # header, one line per window, medians, ratios, hours
    first = lines[1].split()
    assert first[:4] == ["1", "5.00", "2.00", "2.50x"] and first[4:6] == ["0.300", "0.800"]
    assert lines[1].endswith("0.15 / -") and lines[2].endswith("- / -")
    assert "ours 4.50 (4.00-5.00), theirs 2.25 (2.00-2.50)" in lines[3]
    assert "2.00x (ratio of the medians), 2.05x (median of the per-window-pair ratios)" in lines[4]  # 2.5, 1.6
    assert f"ours {250_000 / 4.5 / 3600:.2f} h, theirs {250_000 / 2.25 / 3600:.2f} h" in lines[5]


def test_window_table_warns_about_a_busy_machine():
    quiet = tool.window_table(10, windows([1.0]), windows([1.0]))
    ours, theirs = windows([1.0]), windows([1.0])
    ours[0]["others_cores"], theirs[0]["others_cores"] = 0.9, 1.1
    busy = tool.window_table(10, ours, theirs)
    assert [line.split() for line in busy[:-1]] == [line.replace("- / -", "0.90 / 1.10").split() for line in quiet]
    assert busy[-1].startswith("  WARNING: other processes kept 1.00 cores busy on average (up to 1.10)")


def test_summary_table():
    lines = tool.summary_table(10, {"multimnist_m2": (windows([1.0]), windows([4.0]))})
    row = lines[2].split()
    assert row[:4] == ["multimnist_m2", "10.00", "2.50", "4.00x"]
    assert row[5:] == [f"{250_000 / 10 / 3600:.2f}", f"{250_000 / 2.5 / 3600:.2f}"]
