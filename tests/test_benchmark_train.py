"""python -m mmali_tf.tools.benchmark_train without timing anything: its configurations (the presets, and the legacy
builder for a --baseline older than mmali_tf.configs), the baseline checkout, and its table. (Its bad-argument cases
are in tests/test_tools.py.)"""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from mmali_tf import configs
from mmali_tf.errors import MMALIError
from mmali_tf.tools import benchmark_train as bench
from mmali_tf.tools import flag_checks, repository, speed


def test_configs_are_the_presets_with_the_mode_settings():
    built = speed.benchmark_config("multimnist_m4", xla=True, replicas=2, steps_per_execution=3, intra_op=1,
                                   inter_op=2)
    assert built == configs.build("multimnist_m4").replace(train=dict(
        xla=True, strategy="mirrored", num_devices=2, steps_per_execution=3, intra_op_threads=1, inter_op_threads=2))


def test_old_config_names_are_aliases_of_the_presets():
    assert flag_checks.resolve_aliases(["multimnist2", "mnist_svhn", "multimnist_m2", "multimnist4"],
                                       speed.RENAMED_PRESETS) == ["multimnist_m2", "mnist_svhn", "multimnist_m4"]
    assert set(speed.RENAMED_PRESETS.values()) <= set(configs.PRESETS)


def test_table_row_has_hours_for_a_full_run_and_no_reference_figures():
    result = {"its": [4.0, 5.0, 6.0], "cpu_s": [0.25, 0.2], "load": [1.0, 2.0], "batch_size": 64,
              "threads": {"intra_op": 1, "inter_op": 2}}
    row = bench.table_row("multimnist_m2", "no XLA, 1 replica", result, flops=2e9).split()
    # config, 4 words of mode, median (min-max), ex/s, hours, GFLOP/it, GFLOP/s, CPU-s/it, load, threads
    assert row[5:7] == ["5.00", "(4.00-6.00)"]
    assert row[7:] == ["1280", f"{250_000 / 5.0 / 3600:.1f}", "2.0", "10.0", "0.225", "1.5", "1/2"]
    header = bench.table_header()
    assert "h/250k it" in header
    for gone in ("target", "authors", "issue"):
        assert gone not in header
    for name in ("AUTHORS_ITS", "TARGET_ITS", "ISSUE_GFLOP"):
        assert not hasattr(bench, name) and not hasattr(speed, name)


def commit_before_configs():
    """The checkout and the parent of the commit that added mmali_tf.configs (skip without that history)."""
    root = repository.repository_root()
    if root is None:
        pytest.skip("not a git checkout")
    added = subprocess.run(["git", "-C", str(root), "log", "--diff-filter=A", "--format=%H", "--",
                            "mmali_tf/configs/__init__.py"], capture_output=True, text=True).stdout.split()
    if not added or repository.commit_of(root, added[-1] + "^") is None:
        pytest.skip("the history before mmali_tf.configs is not in this clone")
    return root, added[-1] + "^"


def test_a_baseline_before_configs_times_the_presets_with_the_legacy_builder(tmp_path):
    root, ref = commit_before_configs()
    tree = bench.baseline_tree(root, ref, tmp_path / "old", list(speed.BENCHMARK_PRESETS))
    assert not (tree / "mmali_tf" / "configs").exists()
    assert (tree / "mmali_tf" / "tools" / "benchmark_train_worker.py").is_file()
    code = ("import dataclasses, json, sys; from mmali_tf.tools import speed; import mmali_tf; "
            "assert mmali_tf.__file__.startswith(sys.argv[1]), mmali_tf.__file__; "
            "print(json.dumps({p: dataclasses.asdict(speed.benchmark_config(p, xla=False, intra_op=1, inter_op=2)) "
            "for p in speed.BENCHMARK_PRESETS}))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code, str(tree)], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    legacy = json.loads(proc.stdout.strip().splitlines()[-1])
    for preset in speed.BENCHMARK_PRESETS:
        now = json.loads(json.dumps(dataclasses.asdict(speed.benchmark_config(preset, xla=False, intra_op=1,
                                                                              inter_op=2))))  # tuples as lists
        old = legacy[preset]
        def shared(a, b):
            """The settings (and modality fields) both versions have."""
            if isinstance(a, dict):
                keys = set(a) & set(b)
                return {k: shared(a[k], b[k])[0] for k in keys}, {k: shared(a[k], b[k])[1] for k in keys}
            if isinstance(a, list) and len(a) == len(b):
                pairs = [shared(x, y) for x, y in zip(a, b)]
                return [p[0] for p in pairs], [p[1] for p in pairs]
            return a, b

        for section in ("model", "loss"):
            mine, theirs = shared(old[section], now[section])
            assert mine == theirs, (preset, section)
        for key in ("data_multiplication", "use_all", "percentage", "max_d"):
            assert old["data"][key] == now["data"][key], (preset, key)
        for key in ("batch_size", "xla", "strategy", "num_devices", "intra_op_threads", "inter_op_threads"):
            assert old["train"][key] == now["train"][key], (preset, key)


def test_a_baseline_before_configs_refuses_other_presets(tmp_path):
    root, ref = commit_before_configs()
    with pytest.raises(MMALIError, match="predates mmali_tf.configs.*not quickstart"):
        bench.baseline_tree(root, ref, tmp_path / "old", ["multimnist_m2", "quickstart"])
