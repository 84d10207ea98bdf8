"""python tools/mutation_check.py without running its tests: every mutation applies to today's source and
names tests that exist, the copy it mutates, and how a failing test is read from pytest's output. (A real run takes
minutes per objective mutation: BUILD.md, "Golden tests", has the tables.)"""

import ast
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


def _test_functions(path):
    with open(os.path.join(REPO, path)) as f:
        tree = ast.parse(f.read())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_mutation_names_are_unique_and_their_tests_exist():
    """A renamed test would make pytest fail with "not found", which the check would count as a kill."""
    assert len({m.name for m in mc.MUTATIONS}) == len(mc.MUTATIONS)
    for m in mc.MUTATIONS:
        assert m.group in mc.GROUPS and m.tests, m.name
        for test in m.tests:
            path, _, function = test.partition("::")
            assert os.path.isfile(os.path.join(REPO, path)), (m.name, test)
            assert not function or function in _test_functions(path), (m.name, test)


def test_groups_beyond_the_objective_name_their_own_fast_tests():
    beyond = [m for m in mc.MUTATIONS if m.group != "objective"]
    assert len(beyond) >= 12 and {m.group for m in beyond} == set(mc.GROUPS) - {"objective"}
    for m in beyond:
        assert all("::" in test and not test.startswith("tests/test_golden.py") for test in m.tests), m.name
        assert not set(m.tests) & set(mc.OBJECTIVE_TESTS), m.name


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
    assert copied == tracked | set(mc.tested_files(mc.MUTATIONS)) | {m.path for m in mc.MUTATIONS}


def test_tests_are_listed_once_in_order():
    first = mc.Mutation("a", "x.py", "1", "2", "data", ("tests/t.py::test_a", "tests/u.py"))
    second = mc.Mutation("b", "x.py", "1", "3", "data", ("tests/t.py::test_b", "tests/t.py::test_a"))
    assert mc.tests_of([first, second]) == ["tests/t.py::test_a", "tests/u.py", "tests/t.py::test_b"]
    assert mc.tested_files([first, second]) == ["tests/t.py", "tests/u.py"]


def test_markdown_table():
    m = mc.Mutation("uint8 not scaled", "mmali_tf/export.py", "a", "b", "export", ("tests/t.py::test_a",))
    lines = mc.table([mc.Outcome(m, True, "tests/t.py::test_a", 12.4)], markdown=True)
    assert lines[2] == "| export | uint8 not scaled | `mmali_tf/export.py` | yes | `tests/t.py::test_a` | 12 |"
