"""Methodology: the README's quickstart as a user copies it: ``pipeline.py`` and ``start.py``
extracted from README.md into an empty directory, the worker run with ``dagnats worker
pipeline:worker`` and the script with ``python start.py``, both real processes pointed at a
real environment (``DagnatsEnv``: nats-server, engine, API) by ``DAGNATS_NATS_URL`` only, as
the README says. The tutorial's optional input (no input, an empty name) is checked on the
same worker. Every process has a timeout and is stopped in ``finally``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagnats.testing import DagnatsEnv
from tests.e2e.test_fresh_project import readme_block

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 60.0


def user_env(url: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGNATS_NATS_URL": url}
    env.pop("DAGNATS_DEBUG", None)
    return env


def start_worker(project: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dagnats", "worker", "pipeline:worker"],
        cwd=project,
        env=user_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_script(project: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "start.py"],
        cwd=project,
        env=user_env(url),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


async def test_the_readme_python_snippet_runs_as_a_script(tmp_path: Path) -> None:
    script = readme_block("# start.py")
    assert "asyncio.run(main())" in script
    (tmp_path / "pipeline.py").write_text(readme_block("# pipeline.py"))
    (tmp_path / "start.py").write_text(script)
    async with DagnatsEnv.start() as env:
        worker = await asyncio.to_thread(start_worker, tmp_path, env.url)
        try:
            done = await asyncio.to_thread(run_script, tmp_path, env.url)
            assert done.returncode == 0, done.stdout + done.stderr
            assert done.stdout == "!DLROW ,OLLEH\n"

            # greet's input is optional, as in the tutorial: none, or an empty name.
            for given in (None, ""):
                run = await env.client.start("hello-pipeline", given)
                assert await run.result(timeout=RUN_TIMEOUT_S) == "!DLROW ,OLLEH"
                greeted = (await run.status()).steps["greet"].output
                assert greeted == "Hello, World!"
        finally:
            worker.terminate()
            try:
                code = await asyncio.to_thread(worker.wait, RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                raise
            assert worker.stderr is not None
            log = worker.stderr.read()
            worker.stderr.close()
        assert code == 0, log
