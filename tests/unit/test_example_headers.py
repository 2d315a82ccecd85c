"""Methodology: every example says how to run it, and what it says is true. The headers
(module docstrings) are read with ``ast``: each example package's ``__init__`` must say to
run it from the repository root and list its commands; each module that runs (a
``__main__`` block) or defines a top-level ``dagnats.Worker`` must give its own
``python -m`` / ``dagnats worker`` command. Every command named must point at a module and
attribute that exist. One command is then run for real from the repository root and from
another directory (a subprocess each), which is what the headers warn about."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PACKAGES = sorted(p for p in EXAMPLES.iterdir() if (p / "__init__.py").is_file())
RUN_TIMEOUT_S = 60.0
MODULE_CMD = re.compile(r"python -m (examples(?:\.\w+)+)")
WORKER_CMD = re.compile(r"dagnats worker (examples(?:\.\w+)+):(\w+)")


def header(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def top_level_workers(path: Path) -> list[str]:
    """Names bound at module level to ``dagnats.Worker(...)``."""
    names: list[str] = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr == "Worker":
                names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def defined(module: str, attr: str | None = None) -> bool:
    """Whether ``module`` is a file of the repository (and binds ``attr`` at top level)."""
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.is_file():
        return False
    if attr is None:
        return True
    tree = ast.parse(path.read_text())
    return any(
        isinstance(t, ast.Name) and t.id == attr
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
    )


def test_there_are_examples() -> None:
    assert len(PACKAGES) >= 10


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_each_example_package_says_how_to_run_it(package: Path) -> None:
    text = header(package / "__init__.py")
    assert "from the repository root" in text, package.name
    assert f"pytest examples/{package.name}" in text
    commands = MODULE_CMD.findall(text) + [m for m, _ in WORKER_CMD.findall(text)]
    assert commands, f"{package.name}/__init__.py names no command"
    for module in MODULE_CMD.findall(text):
        assert defined(module), module
    for module, attr in WORKER_CMD.findall(text):
        assert defined(module, attr), f"{module}:{attr}"


@pytest.mark.parametrize(
    "module",
    sorted(p for p in EXAMPLES.glob("*/*.py") if not p.name.startswith(("test_", "__"))),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_each_runnable_module_says_how_to_run_it(module: Path) -> None:
    dotted = f"examples.{module.parent.name}.{module.stem}"
    source = module.read_text()
    text = header(module)
    runs = '__name__ == "__main__"' in source
    workers = top_level_workers(module)
    if not runs and not workers:
        return
    assert "repository root" in text, dotted
    if runs:
        assert f"python -m {dotted}" in text
    for name in workers:
        assert f"dagnats worker {dotted}:{name}" in text


def _python_m(module: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def test_python_m_works_from_the_repository_root_only(tmp_path: Path) -> None:
    # examples.testing.workflow prints its workflow's JSON: it needs no server.
    here = _python_m("examples.testing.workflow", REPO)
    assert here.returncode == 0, here.stderr
    assert '"name": "subscription-renewal"' in here.stdout
    elsewhere = _python_m("examples.testing.workflow", tmp_path)
    assert elsewhere.returncode == 1
    assert "No module named 'examples'" in elsewhere.stderr
