"""Methodology: the README's quickstart module and its test, extracted from README.md as a
user would copy them, in a temporary directory with no configuration of any kind, run by
``python -m pytest`` in a subprocess under each async test style (pytest-asyncio strict and
auto mode, anyio with pytest-asyncio disabled). Deprecation warnings are errors, so a plugin
that only works with a warning fails here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 120.0

ANYIO_TEST = """
import pytest
from pipeline import wf, worker

@pytest.mark.anyio
async def test_with_anyio(dagnats_env):
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(wf, "World")
    assert await run.result(timeout=10) == "!DLROW ,OLLEH"
"""


def readme_block(first_line: str) -> str:
    """The README's python block that starts with ``first_line``."""
    readme = (REPO / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"README.md has no python block starting with {first_line!r}")


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{project}"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-W",
            "error::DeprecationWarning",
            *args,
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipeline.py").write_text(readme_block("# pipeline.py"))
    (tmp_path / "test_pipeline.py").write_text(readme_block("# test_pipeline.py"))
    return tmp_path


@pytest.mark.parametrize(
    "style",
    [
        # pytest-asyncio warns about its own unset option at start-up in every project;
        # that warning is its, not dagnats', so it is set here to keep -W error meaningful.
        ["-o", "asyncio_default_fixture_loop_scope=function"],
        ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"],
        ["-p", "no:asyncio"],
    ],
    ids=["asyncio-strict", "asyncio-auto", "anyio-only"],
)
def test_readme_test_passes_in_a_fresh_project(project: Path, style: list[str]) -> None:
    done = run_pytest(project, *style)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_an_anyio_marked_test_works_beside_pytest_asyncio(project: Path) -> None:
    (project / "test_anyio.py").write_text(ANYIO_TEST)
    done = run_pytest(project, "-o", "asyncio_default_fixture_loop_scope=function")
    assert done.returncode == 0, done.stdout + done.stderr
    # anyio runs a marked test on every installed backend; the trio one is skipped.
    assert "2 passed" in done.stdout


def test_the_plugin_does_not_import_the_engine() -> None:
    code = (
        "import sys, dagnats.testing.plugin\n"
        "heavy = [m for m in sys.modules if m.startswith(('dagnats.engine', 'dagnats.server'))]\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
