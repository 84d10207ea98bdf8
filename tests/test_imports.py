"""The package's import structure (issue 24): no import cycle, the layer order, a config built without TensorFlow,
and the developer tools outside the wheel.

The import graph is read from the source with ``ast`` (nothing is imported): every ``import`` statement at any
depth (module level, inside functions and classes) except those under ``if TYPE_CHECKING:``,
``importlib.import_module("literal")`` calls, and the package ``__init__`` modules that importing a submodule runs
first.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import setuptools

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "mmali_tf"

# The layer order: a module may import modules of its own tier or of a lower one (tier 0 imports nothing of
# mmali_tf but tier 0). Each module takes the tier of the longest prefix listed here; a new module must fall under
# one of them.
TIERS = {
    0: ("mmali_tf", "mmali_tf.errors", "mmali_tf.registry", "mmali_tf.constants", "mmali_tf.atomic_files",
        "mmali_tf.paths"),
    1: ("mmali_tf.config",),
    2: ("mmali_tf.networks", "mmali_tf.data", "mmali_tf.tiles", "mmali_tf.losses", "mmali_tf.noise",
        "mmali_tf.optimizers", "mmali_tf.checkpointing", "mmali_tf.distribution", "mmali_tf.monitoring",
        "mmali_tf.rundir"),
    3: ("mmali_tf.kinds", "mmali_tf.checks"),
    4: ("mmali_tf.objective", "mmali_tf.model", "mmali_tf.images", "mmali_tf.training_data"),
    5: ("mmali_tf.training", "mmali_tf.evaluation"),
    6: ("mmali_tf.configs", "mmali_tf.cli", "mmali_tf.train", "mmali_tf.evaluate", "mmali_tf.export",
        "mmali_tf.launch", "mmali_tf.tools"),
}


def package_modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:`` (annotations only: never run)."""
    skipped = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None) if isinstance(node, ast.If) else None
        if test is not None and getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING":
            skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(dotted name, line) of everything ``tree`` imports, at any depth, except under ``if TYPE_CHECKING:``;
    relative imports resolved."""
    here = module if is_package else module.rpartition(".")[0]
    skipped = _type_checking_only(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[:len(here.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value, node.lineno))
    return found


def import_edges() -> dict[str, dict[str, str]]:
    """importer -> {imported module: "file:line"} over the package's modules.

    A name that is not a module (``from mmali_tf.config import ModalitySpec``) counts as its module. Importing
    ``a.b.c`` also counts ``a`` and ``a.b`` (their ``__init__`` runs first), except the importer's own packages,
    which have run already.
    """
    modules = package_modules()
    edges: dict[str, dict[str, str]] = {name: {} for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        own = set(_ancestors(name)) | {name}
        for target, line in _imported_names(tree, name, path.name == "__init__.py"):
            if target not in modules:
                continue
            for imported in _ancestors(target) + [target]:
                if imported in modules and imported not in own:
                    edges[name].setdefault(imported, f"{path.relative_to(REPO)}:{line}")
    return edges


def cycles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (each sorted)."""
    reach = {}
    for start in edges:
        seen, todo = set(), list(edges[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo += edges.get(node, {})
        reach[start] = seen
    groups = {tuple(sorted(m for m in reach[name] if name in reach[m])) for name in edges if name in reach[name]}
    return sorted(list(group) for group in groups)


def tier_of(module: str) -> int | None:
    matches = [(len(prefix), tier) for tier, prefixes in TIERS.items() for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


def test_the_import_graph_has_no_cycle():
    edges = import_edges()
    assert len(edges) > 50 and edges["mmali_tf.model"], "the graph reader found no imports"
    found = cycles(edges)
    where = {" ".join(group): [f"{a} -> {b} ({edges[a][b]})" for a in group for b in edges[a] if b in group]
             for group in found}
    assert not found, json.dumps(where, indent=1)


def test_every_import_follows_the_layer_order():
    edges = import_edges()
    untiered = sorted(name for name in edges if tier_of(name) is None)
    assert not untiered, f"modules without a tier (add them to TIERS): {untiered}"
    upward = [f"{a} (tier {tier_of(a)}) -> {b} (tier {tier_of(b)}) at {where}"
              for a, targets in sorted(edges.items()) for b, where in sorted(targets.items())
              if tier_of(b) > tier_of(a)]
    assert not upward, "\n".join(upward)


def test_building_every_preset_imports_neither_tensorflow_nor_pil():
    code = ("import json, sys\n"
            "from mmali_tf import configs\n"
            "[configs.build(name) for name in configs.PRESETS]\n"
            "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'PIL') if m in sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                         env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_wheel_holds_the_package_only():
    with open(REPO / "pyproject.toml", "rb") as f:
        find = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(where=str(REPO), include=find["include"], exclude=find.get("exclude", ()))
    assert PACKAGE in packages and f"{PACKAGE}.tools" in packages  # the user tools ship
    assert all(p == PACKAGE or p.startswith(PACKAGE + ".") for p in packages), packages
    assert (REPO / "tools" / "__init__.py").exists()  # the developer tools would be a package "tools" if included
