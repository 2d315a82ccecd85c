"""Methodology: docs/first-workflow.md done literally. Its files (each code block after a
``<!-- file: NAME -->`` marker) are written into an empty directory; its ``console`` blocks
are run in order, each ``$ dagnats ...`` line as a real ``python -m dagnats`` process with
``DAGNATS_NATS_URL`` pointing at a real environment (``DagnatsEnv``: nats-server, engine,
API, as ``dagnats serve`` would be), and each command's stdout and stderr must be exactly
the lines the page shows under it, once run ids and times are masked. A command ending in
``&`` runs in the background, waited for until it logs that it serves (bounded). Every
process has a timeout and is stopped in ``finally``."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dagnats.testing import DagnatsEnv

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "first-workflow.md"
CLI_TIMEOUT_S = 60.0
RUN_ID = re.compile(r"\b[0-9a-f]{28}\b")
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?")


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)

    @property
    def background(self) -> bool:
        return self.line.endswith("&")

    def argv(self) -> list[str]:
        words = shlex.split(self.line.removesuffix("&"))
        assert words[0] == "dagnats", self.line
        return [sys.executable, "-m", "dagnats", *words[1:]]


def page_files(text: str) -> dict[str, str]:
    found = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return {name: body for name, body in found}


def page_commands(text: str) -> list[Command]:
    out: list[Command] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append(Command(line[2:].strip()))
            else:
                out[-1].expected.append(line)
    return out


def masked(lines: list[str]) -> list[str]:
    return [TIME.sub("<time>", RUN_ID.sub("<run-id>", line)).rstrip() for line in lines]


def user_env(url: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGNATS_NATS_URL": url}
    env.pop("DAGNATS_DEBUG", None)
    return env


def run(cmd: Command, project: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd.argv(),
        cwd=project,
        env=user_env(url),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def spawn(cmd: Command, project: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd.argv(),
        cwd=project,
        env=user_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_serving(proc: subprocess.Popen[str]) -> None:
    """Read the worker's log until it says it serves (its stderr closes if it dies)."""
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if " serving " in line:
            return
    raise AssertionError(f"the worker ended without serving:\n{''.join(seen)}")


def test_the_page_has_files_and_commands() -> None:
    text = PAGE.read_text()
    assert set(page_files(text)) == {
        "pipeline.json",
        "pipeline-1.1.json",
        "tasks.py",
        "workflows.py",
        "workflows_v11.py",
    }
    assert len(page_commands(text)) >= 15
    readme = (REPO / "README.md").read_text()
    assert "(docs/first-workflow.md)" in readme


async def test_first_workflow_page_runs_as_written(tmp_path: Path) -> None:
    text = PAGE.read_text()
    for name, body in page_files(text).items():
        (tmp_path / name).write_text(body)
    background: list[subprocess.Popen[str]] = []
    async with DagnatsEnv.start() as env:
        try:
            for cmd in page_commands(text):
                if cmd.background:
                    proc = await asyncio.to_thread(spawn, cmd, tmp_path, env.url)
                    background.append(proc)
                    await asyncio.wait_for(asyncio.to_thread(wait_serving, proc), CLI_TIMEOUT_S)
                    continue
                done = await asyncio.to_thread(run, cmd, tmp_path, env.url)
                shown = (done.stdout + done.stderr).splitlines()
                assert masked(shown) == masked(cmd.expected), f"$ {cmd.line}"
                fails = any(
                    line.startswith("error:") or " failed at step " in line for line in cmd.expected
                )
                assert (done.returncode != 0) == fails, f"$ {cmd.line}: {done.returncode}"
        finally:
            for proc in background:
                proc.terminate()
                try:
                    await asyncio.to_thread(proc.wait, CLI_TIMEOUT_S)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                    if proc.stderr is not None:
                        proc.stderr.close()
