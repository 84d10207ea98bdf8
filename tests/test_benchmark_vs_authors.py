"""tools/benchmark_vs_authors.py without torch: argument and setup checks, and the statistics of its tables."""

import importlib.util
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


TOOLS = os.path.join(REPO, "tools")


@pytest.fixture(scope="module")
def tool():
    sys.path.insert(0, TOOLS)
    try:
        return importlib.import_module("benchmark_vs_authors")
    finally:
        sys.path.remove(TOOLS)


def windows(seconds, cpu=1.0):
    return [{"seconds": s, "cpu_seconds": cpu} for s in seconds]


def error_lines(capsys):
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.strip()]


def test_missing_reference_dir_is_one_error_line(tool, capsys):
    assert tool.main(["--configs", "multimnist_m2"]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: --reference_dir is required")


def test_reference_dir_that_is_not_their_tree(tool, tmp_path, capsys):
    assert tool.main(["--reference_dir", str(tmp_path / "absent")]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "no such directory" in lines[0]
    (tmp_path / "options.py").write_text("")
    assert tool.main(["--reference_dir", str(tmp_path)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a work tree of 6b5d/mmali" in lines[0]


def fake_their_tree(tool, path):
    for name in tool.THEIR_REQUIRED_FILES:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("")
    return str(path)


def test_missing_torch_python(tool, tmp_path, capsys):
    reference = fake_their_tree(tool, tmp_path)
    assert tool.main(["--reference_dir", reference, "--torch_python", str(tmp_path / "nopython")]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "--torch_python" in lines[0] and "no such executable" in lines[0]


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="this interpreter has torch")
def test_torch_python_without_torch(tool, tmp_path, capsys):
    reference = fake_their_tree(tool, tmp_path)
    assert tool.main(["--reference_dir", reference, "--torch_python", sys.executable]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "cannot import torch" in lines[0]


@pytest.mark.parametrize("argv, message", [
    (["--configs", "mnist_svhn,cub"], "unknown config 'cub'"),
    (["--windows", "0"], "must be >= 1"),
    (["--torch_threads", "-1"], "--torch_threads"),
    (["--no_such_flag"], "unrecognized arguments"),
])
def test_bad_arguments_are_one_error_line(tool, capsys, argv, message):
    assert tool.main(argv) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_compare_medians_ratios_and_hours(tool):
    # 10 iterations per window: ours 5, 4, 2 it/s; theirs 2, 2, 1 it/s.
    c = tool.compare(10, windows([2.0, 2.5, 5.0]), windows([5.0, 5.0, 10.0]))
    assert c["ours_its"] == pytest.approx([5.0, 4.0, 2.0])
    assert c["ours_median"] == pytest.approx(4.0) and c["theirs_median"] == pytest.approx(2.0)
    assert c["ratio_of_medians"] == pytest.approx(2.0)
    assert c["median_pair_ratio"] == pytest.approx(2.0)  # pair ratios 2.5, 2.0, 2.0
    assert c["ours_hours"] == pytest.approx(250_000 / 4.0 / 3600)
    assert c["theirs_hours"] == pytest.approx(250_000 / 2.0 / 3600)


def test_pair_ratio_differs_from_ratio_of_medians(tool):
    c = tool.compare(1, windows([1.0, 0.5]), windows([1.0, 2.0]))  # ours 1, 2 it/s; theirs 1, 0.5 it/s
    assert c["ratio_of_medians"] == pytest.approx(1.5 / 0.75)
    assert c["median_pair_ratio"] == pytest.approx((1.0 + 4.0) / 2)


def test_compare_needs_paired_windows(tool):
    with pytest.raises(ValueError):
        tool.compare(10, windows([1.0, 2.0]), windows([1.0]))
    with pytest.raises(ValueError):
        tool.compare(10, [], [])


def test_hours_for(tool):
    assert tool.hours_for(250_000, 250_000 / 3600) == pytest.approx(1.0)
    assert tool.hours_for(36_000, 2.0) == pytest.approx(5.0)


def test_window_table_lines(tool):
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


def test_window_table_warns_about_a_busy_machine(tool):
    quiet = tool.window_table(10, windows([1.0]), windows([1.0]))
    ours, theirs = windows([1.0]), windows([1.0])
    ours[0]["others_cores"], theirs[0]["others_cores"] = 0.9, 1.1
    busy = tool.window_table(10, ours, theirs)
    assert [line.split() for line in busy[:-1]] == [line.replace("- / -", "0.90 / 1.10").split() for line in quiet]
    assert busy[-1].startswith("  WARNING: other processes kept 1.00 cores busy on average (up to 1.10)")


def test_summary_table(tool):
    lines = tool.summary_table(10, {"multimnist_m2": (windows([1.0]), windows([4.0]))})
    row = lines[2].split()
    assert row[:4] == ["multimnist_m2", "10.00", "2.50", "4.00x"]
    assert row[5:] == [f"{250_000 / 10 / 3600:.2f}", f"{250_000 / 2.5 / 3600:.2f}"]


def test_parent_imports_neither_framework():
    """The parent (and so the authors' worker, which is the same file) imports no TensorFlow and no torch."""
    import subprocess

    code = ("import sys; sys.path.insert(0, 'tools'); import benchmark_vs_authors; "
            "print(sorted(k for k in ('tensorflow', 'torch', 'mmali_tf') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
