"""Every console script of pyproject.toml names an importable entry point, and every user command of the package
(a module with ``entry_point``) has a console script; developer tooling (top-level tools/) has none."""

import importlib
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _scripts() -> dict[str, str]:
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        text = f.read()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$', section, re.MULTILINE))


def _commands() -> set[str]:
    found = set()
    for folder, package in ((os.path.join(REPO, "mmali_tf"), "mmali_tf"),
                            (os.path.join(REPO, "mmali_tf", "tools"), "mmali_tf.tools")):
        for name in os.listdir(folder):
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    if "\ndef entry_point(" in f.read():
                        found.add(f"{package}.{name[:-3]}")
    return found


def test_every_console_script_names_an_entry_point():
    scripts = _scripts()
    assert len(scripts) >= 13
    for script, target in scripts.items():
        module, _, function = target.partition(":")
        assert function == "entry_point" and script.startswith("mmali-"), script
        assert callable(getattr(importlib.import_module(module), function)), script


def test_every_user_command_has_a_console_script_and_no_developer_tool_does():
    targets = {target.partition(":")[0] for target in _scripts().values()}
    assert _commands() == targets
    assert not any(t.startswith("tools.") for t in targets)
