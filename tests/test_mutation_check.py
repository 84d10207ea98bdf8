"""python tools/mutation_check.py without running its tests: every mutation applies to today's source,
the copy it mutates, and how a failing test is read from pytest's output. (A real mutation runs the objective's
tests for minutes: BUILD.md, "Golden tests".)"""

import os

import pytest

from mmali_tf.errors import MMALIError
from tools import mutation_check as mc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("mutation", mc.MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_changes_one_place_of_the_source(mutation):
    with open(os.path.join(REPO, mutation.path)) as f:
        assert f.read().count(mutation.old) == 1
    assert mutation.new != mutation.old


def test_mutation_names_are_unique_and_tests_exist():
    assert len({m.name for m in mc.MUTATIONS}) == len(mc.MUTATIONS)
    for test in mc.TESTS:
        assert os.path.isfile(os.path.join(REPO, test)), test


def test_apply_changes_the_copy_and_refuses_a_missing_source(tmp_path):
    mutation = mc.Mutation("x", "a.py", "b = 1", "b = 2")
    (tmp_path / "a.py").write_text("a = 0\nb = 1\n")
    mc.apply(mutation, tmp_path)
    assert (tmp_path / "a.py").read_text() == "a = 0\nb = 2\n"
    with pytest.raises(MMALIError, match="occurs 0 times in a.py"):
        mc.apply(mutation, tmp_path)


def test_first_failure():
    output = "..F\nFAILED tests/test_ema.py::test_boundary - AssertionError\nERROR tests/test_x.py::y\n1 failed"
    assert mc.first_failure(output) == "tests/test_ema.py::test_boundary"
    assert mc.first_failure("ImportError while loading conftest (error)") == "import/collection error"


def test_copy_holds_the_tracked_files_and_the_working_tree_tests(tmp_path):
    root = mc.repository.repository_root()
    if root is None:
        pytest.skip("not a git checkout")
    mc.copy_repository(root, tmp_path)
    copied = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    tracked = {p for p in mc.repository.tracked_files(root) if (root / p).is_file()}
    assert copied == tracked | set(mc.TESTS) | {m.path for m in mc.MUTATIONS}
