"""The command lines of the tools (``python -m mmali_tf.tools.<name>``, and the checkout's ``python tools/<name>.py``):
a bad argument is one ``error:`` line and
exit status 2 before any work, a failure one line and exit status 1. No TensorFlow training.

Most cases are parsed the way each tool's entry point parses them (its ``define_flags`` and
``mmali_tf.cli.parse_flags_one_line``), all cases of one tool in one fresh interpreter, which costs one TensorFlow
import per tool instead of one per case; a few run the real command end to end.
"""

import json
import os
import subprocess
import sys

import pytest

from tools.benchmark_vs_authors_theirs import THEIR_REQUIRED_FILES
from tests.test_cli import assert_one_error_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO}

# Runs in a fresh interpreter: argv[1] a tool module, argv[2] a JSON list of argument lists. Prints, as JSON, the
# exit status and the stderr of parsing each list as the tool's entry point does (0 and "" if it parses).
PARSE_DRIVER = """
import contextlib, importlib, io, json, sys
from absl import flags
from mmali_tf import cli
tool = importlib.import_module(sys.argv[1])
tool.define_flags()
results = []
for argv in json.loads(sys.argv[2]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            cli.parse_flags_one_line([sys.argv[1], *argv])
            status = 0
        except SystemExit as exc:
            status = exc.code
    flags.FLAGS.unparse_flags()
    results.append([status, err.getvalue()])
print(json.dumps(results))
"""


def parse_in_one_process(module: str, cases: list[list[str]]) -> list[tuple[int, str]]:
    """(exit status, stderr) of parsing each argument list of ``cases`` with the flags of tool ``module``."""
    proc = subprocess.run([sys.executable, "-c", PARSE_DRIVER, module, json.dumps(cases)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return [tuple(r) for r in json.loads(proc.stdout.strip().splitlines()[-1])]


DEVELOPER_TOOLS = ("benchmark_train", "benchmark_vs_authors", "equal_budget", "mutation_check", "profile_train")
"""Tools of the checkout (``tools/<name>.py``); the others are the package's user tools (``mmali_tf.tools``)."""


def tool_module(name: str) -> str:
    return f"tools.{name}" if name in DEVELOPER_TOOLS else f"mmali_tf.tools.{name}"


def run_tool(name: str, *args: str, env=None, cwd=REPO) -> subprocess.CompletedProcess:
    command = ([str(os.path.join(REPO, "tools", f"{name}.py"))] if name in DEVELOPER_TOOLS
               else ["-m", f"mmali_tf.tools.{name}"])
    return subprocess.run([sys.executable, *command, *args], cwd=cwd, env=env or ENV, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def paths(tmp_path):
    """Placeholders of the cases: a file, a missing path, an empty directory, a fake tree of the authors' code."""
    (tmp_path / "a_file").write_text("")
    (tmp_path / "empty").mkdir()
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "options.py").write_text("")
    for name in THEIR_REQUIRED_FILES:
        (tmp_path / "theirs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "theirs" / name).write_text("")
    return {"file": str(tmp_path / "a_file"), "missing": str(tmp_path / "missing"), "empty": str(tmp_path / "empty"),
            "partial": str(tmp_path / "partial"), "theirs": str(tmp_path / "theirs")}


# tool -> [(arguments, a fragment of the error line)]; "{file}" etc. are the placeholders of ``paths``.
BAD_FLAGS = {
    "benchmark_train": [
        (["--configs=mnist_svhn,nosuch"], "unknown 'nosuch'; choose from mnist_svhn"),
        (["--configs="], "--configs selects nothing"),
        (["--precisions=fp16"], "unknown 'fp16'; choose from fp32, bf16, auto"),
        (["--steps=0"], "flag --steps=0"),
        (["--warmup=0"], "flag --warmup=0"),
        (["--data_dir={missing}"], "no such directory"),
        (["--svhn_dir={file}"], "no such directory"),
        (["--no_such_flag"], "Unknown command line flag 'no_such_flag'"),
    ],
    "equal_budget": [
        (["--sides=ours,mine"], "unknown 'mine'; choose from ours, theirs"),
        (["--iterations=0"], "flag --iterations=0"),
        (["--data_dir={missing}"], "no such directory"),
        (["--reference_dir={file}"], "no such directory"),
    ],
    "benchmark_vs_authors": [
        ([], "--reference_dir is required"),
        (["--reference_dir={missing}"], "no such directory"),
        (["--reference_dir={partial}"], "not a work tree of 6b5d/mmali (missing utils.py"),
        (["--reference_dir={theirs}", "--torch_python={missing}"], "no such executable"),
        (["--configs=mnist_svhn,cub"], "unknown 'cub'; choose from mnist_svhn, multimnist_m2, multimnist_m4"),
        (["--windows=0"], "flag --windows=0"),
        (["--torch_threads=-1"], "flag --torch_threads=-1"),
        (["--no_such_flag"], "Unknown command line flag 'no_such_flag'"),
    ],
    "profile_train": [
        (["--config=nosuch"], "unknown config 'nosuch'"),
        (["--config={missing}.py"], "does not exist"),
        (["--config.train.batch_size=0"], "batch_size must be >= 1"),
        (["--config.model.modalities=a:b"], "modalities"),
        (["--logdir={file}"], "exists and is not a directory"),
        (["--logdir={file}/sub"], "is not a directory"),
        (["--steps=0"], "flag --steps=0"),
    ],
    "run_table1": [
        (["--modalities=7"], "unknown '7'; choose from 2, 3, 4"),
        (["--modalities=7", "--discriminators=both"], "unknown '7'; choose from 2, 3, 4 (and 1 more bad flag value"),
        (["--modalities=2,x"], "unknown 'x'"),
        (["--discriminators=both"], "unknown 'both'"),
        (["--iterations=0"], "flag --iterations=0"),
        (["--root={file}"], "exists and is not a directory"),
        (["--root={file}/runs"], "is not a directory"),
        (["--data_dir={missing}"], "no such directory"),
        (["--metrics=latent,foo"], "unknown metric 'foo'"),
        (["--classifier_dir={file}"], "exists and is not a directory"),
        (["--max_pairs=-1"], "flag --max_pairs=-1"),
    ],
    "train_classifiers": [
        ([], "give exactly one of --workdir and --datasets"),
        (["--workdir={empty}", "--datasets=mnist:mnist"], "no config at"),
        (["--workdir={missing}"], "no config at"),
        (["--datasets=mnist:mnist"], "--datasets needs --out_dir"),
        (["--datasets=mnist", "--out_dir={empty}"], "entry 'mnist' must be dataset:kind"),
        (["--datasets=cifar:svhn", "--out_dir={empty}"], "entry 'cifar:svhn'"),
        (["--datasets=mnist:mnist", "--out_dir={file}"], "exists and is not a directory"),
        (["--datasets=mnist:mnist", "--out_dir={empty}", "--data_dir={missing}"], "no such directory"),
        (["--protocol=strict"], "flag --protocol=strict"),
        (["--epochs=-1"], "flag --epochs=-1"),
    ],
    "make_svhn_standin": [
        ([], "--out_dir must have a value"),
        (["--out_dir={file}"], "exists and is not a directory"),
        (["--out_dir={file}/standin"], "is not a directory"),
        (["--out_dir={empty}", "--train_count=0"], "flag --train_count=0"),
        (["--out_dir={empty}", "--workers=0"], "flag --workers=0"),
        (["--out_dir={empty}", "--seed=-1"], "flag --seed=-1"),
    ],
    "mutation_check": [
        (["--only=no such mutation"], "no mutation name contains 'no such mutation'"),
        (["--only=EMA", "--only=nothing"], "no mutation name contains 'nothing'"),
        (["--groups=evaluation,nothing"], "unknown 'nothing'; choose from objective, evaluation"),
    ],
    "make_cub_standin": [
        ([], "--out_dir must have a value"),
        (["--out_dir={file}"], "exists and is not a directory"),
        (["--out_dir={file}/standin"], "is not a directory"),
        (["--out_dir={empty}", "--train_images=149"], "--train_images must be >= 150"),
        (["--out_dir={empty}", "--test_images=0"], "--test_images must be >= 50"),
        (["--out_dir={empty}", "--seed=-1"], "flag --seed=-1"),
    ],
    "prepare_cub": [
        ([], "--cub_dir must have a value"),
        (["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={missing}"], "pass exactly one of"),
        (["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={missing}", "--resnet_weights=none", "--download"],
         "pass exactly one of"),
        (["--cub_dir={missing}", "--birds_dir={empty}", "--out_dir={missing}", "--download"], "no such directory"),
        (["--cub_dir={empty}", "--birds_dir={file}", "--out_dir={missing}", "--download"], "no such directory"),
        (["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={file}", "--download"], "exists and is not a dir"),
        (["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={missing}", "--resnet_weights={missing}.h5"],
         "no such file"),
        (["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={missing}", "--download", "--batch_size=0"],
         "flag --batch_size=0"),
        (["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={missing}", "--download", "--pixels=bgr"],
         "flag --pixels=bgr"),
    ],
    "cub_to_vectors": [
        ([], "--data_dir must have a value"),
        (["--data_dir={missing}", "--out_dir={missing}"], "no such directory"),
        (["--data_dir={empty}", "--out_dir={file}"], "exists and is not a directory"),
        (["--data_dir={empty}", "--out_dir={missing}", "--captions=some"], "flag --captions=some"),
    ],
}


# tool -> argument lists that parse (the old benchmark names are aliases); benchmark_vs_authors has none without torch.
GOOD_FLAGS = {
    "benchmark_train": [["--configs=multimnist_m2,mnist_svhn", "--precisions=fp32,bf16", "--baseline=HEAD~1"]],
    "equal_budget": [["--config=multimnist_m4", "--sides=ours", "--label=bf16", "--ours_flags=--precision=bf16",
                      "--against=fp32"]],
    "benchmark_vs_authors": [],
    "profile_train": [["--config=tiny", "--config.train.batch_size=4", "--logdir={missing}/profile"]],
    "run_table1": [["--modalities=2,4", "--discriminators=joint", "--root={missing}/runs", "--metrics=coherence"]],
    "train_classifiers": [["--datasets=mnist:mnist,digits_colour32:svhn", "--out_dir={missing}"]],
    "make_svhn_standin": [["--out_dir={missing}/standin", "--workers=2"]],
    "mutation_check": [["--only=EMA"], ["--list"], ["--groups=evaluation,checkpoints", "--markdown"]],
    "make_cub_standin": [["--out_dir={missing}/standin", "--seed=3", "--train_images=150", "--test_images=50"]],
    "prepare_cub": [["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={missing}", "--resnet_weights=none"],
                    ["--cub_dir={empty}", "--birds_dir={empty}", "--out_dir={missing}", "--download",
                     "--pixels=caffe", "--overwrite"]],
    "cub_to_vectors": [["--data_dir={empty}", "--out_dir={missing}/vectors", "--captions=first", "--overwrite"]],
}


@pytest.mark.parametrize("tool", sorted(BAD_FLAGS))
def test_bad_flags_are_one_error_line_and_status_2(tool, paths):
    bad = [[arg.format(**paths) for arg in argv] for argv, _ in BAD_FLAGS[tool]]
    good = [[arg.format(**paths) for arg in argv] for argv in GOOD_FLAGS[tool]]
    results = parse_in_one_process(tool_module(tool), bad + good)
    for (argv, fragment), case, (status, stderr) in zip(BAD_FLAGS[tool], bad, results):
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), (case, status, stderr)
        assert fragment.format(**paths) in lines[0], (case, lines[0])
    for case, result in zip(good, results[len(bad):]):
        assert result == (0, ""), (case, result)


def test_table1_refuses_a_bad_modality_count_before_starting(tmp_path):
    root = tmp_path / "table1"
    result = run_tool("run_table1", "--modalities=7", f"--root={root}")
    assert result.returncode == 2
    assert_one_error_line(result, "--modalities", "unknown '7'")
    assert not root.exists()


def test_table1_checks_the_training_flags_with_training_before_starting(tmp_path):
    root = tmp_path / "table1"
    result = run_tool("run_table1", "--modalities=2", "--discriminators=joint", f"--root={root}",
                      "--extra_train_flags=--config.train.no_such_setting=1")
    assert result.returncode == 2
    assert_one_error_line(result, "mmali_tf.train refuses the flags for multimnist_m2_joint", "no_such_setting")
    assert not root.exists()


def test_failure_is_one_line_and_status_1_and_verbose_shows_the_traceback(tmp_path):
    args = ("--datasets=mnist:mnist", f"--data_dir={tmp_path}", f"--out_dir={tmp_path / 'classifiers'}")
    result = run_tool("train_classifiers", *args)
    assert result.returncode == 1
    assert_one_error_line(result, "mnist")
    verbose = run_tool("train_classifiers", *args, env={**ENV, "MMALI_VERBOSE": "1"})
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr and verbose.stderr.strip().splitlines()[-1] == result.stderr.strip()


def test_no_tool_edits_sys_path():
    tools = os.path.join(REPO, "mmali_tf", "tools")
    for name in sorted(os.listdir(tools)):
        if name.endswith(".py"):
            with open(os.path.join(tools, name)) as f:
                source = f.read()
            assert "sys.path.insert" not in source and "sys.path.append" not in source, name
