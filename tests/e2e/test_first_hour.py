"""Methodology: the stumbles of a first hour with the CLI, each typed as a newcomer would:
``python -m dagnats ...`` as a subprocess against a real environment (``DagnatsEnv`` in the
test process) or against nothing at all; exit status, stdout and stderr are checked as text
or parsed JSON. Every subprocess has a timeout."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dagnats
from dagnats.testing import DagnatsEnv

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 30.0
NOWHERE = "nats://127.0.0.1:1"
STAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d")


def cli_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DAGNATS_DEBUG", None)
    return env


def dagnats_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagnats", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env=cli_env(),
        cwd=REPO,
    )


async def acli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(dagnats_cli, *args)


def stamps(doc: Any) -> Iterator[str]:
    if isinstance(doc, str) and STAMP.match(doc):
        yield doc
    elif isinstance(doc, dict):
        for v in doc.values():
            yield from stamps(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from stamps(v)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "list"],
        ["status"],
        ["workflow", "list"],
        ["approve", "a" * 64],
        ["engine"],
        ["worker", "examples.hello_pipeline.worker:worker", "--wait", "0"],
    ],
    ids=lambda a: " ".join(a[:2])[:20],
)
def test_cannot_connect_is_quick_and_says_what_to_do(argv: list[str]) -> None:
    # Quick means no 20 s of silent retries: measured against the same interpreter's start-up
    # (`--version`) just before, since a loaded machine can take seconds to start either.
    began = time.perf_counter()
    assert dagnats_cli("--version").returncode == 0
    startup_s = time.perf_counter() - began
    began = time.perf_counter()
    done = dagnats_cli(*argv, "--nats-url", NOWHERE)
    assert time.perf_counter() - began < startup_s + 5.0
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: cannot connect to NATS at nats://127.0.0.1:1")
    assert "dagnats serve" in done.stderr and "--nats-url" in done.stderr


def test_json_failures_are_json_on_stderr_with_the_exit_status() -> None:
    done = dagnats_cli("run", "list", "--json", "--nats-url", NOWHERE)
    assert done.returncode == 1 and done.stdout == ""
    error = json.loads(done.stderr)["error"]
    assert error["kind"] == "NatsUnavailableError" and error["exit_status"] == 1
    assert "dagnats serve" in error["message"]
    usage = dagnats_cli("run", "start", "wf", "World", "--json")
    assert usage.returncode == 2
    assert json.loads(usage.stderr)["error"]["kind"] == "UsageError"


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["run", "start", "hello-pipeline", "World"], "INPUT"),
        (["run", "signal", "run-12345678", "go", "World"], "DATA"),
        (["event", "publish", "payment.received", "{amount: 3}"], "DATA"),
    ],
    ids=["run start", "run signal", "event publish"],
)
def test_input_that_is_not_json_is_refused_naming_the_problem(argv: list[str], what: str) -> None:
    done = dagnats_cli(*argv, "--nats-url", NOWHERE)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: Invalid value for {what}: '{argv[-1]}' is not valid")
    assert "is not valid JSON: Expecting" in done.stderr
    assert "write a string as JSON too" in done.stderr


def test_help_has_no_type_noise_shows_defaults_and_completion() -> None:
    listing = dagnats_cli("run", "list", "--help")
    assert listing.returncode == 0
    assert "<bool>" not in listing.stdout
    assert "[default: 50]" in listing.stdout
    top = dagnats_cli("--help")
    assert "--install-completion" in top.stdout and "--show-completion" in top.stdout


async def test_a_closed_pipe_ends_quietly_and_json_timestamps_are_rfc3339_z() -> None:
    async with DagnatsEnv.start() as env:
        wf = dagnats.Workflow("first-hour")
        wf.approval("ok", timeout="1h")
        runs = [await env.client.start(wf, None) for _ in range(3)]
        status = await acli("run", "status", runs[0].run_id, "--json", "--nats-url", env.url)
        assert status.returncode == 0, status.stderr
        seen = list(stamps(json.loads(status.stdout)))
        assert seen and all(s.endswith("Z") and "T" in s for s in seen), seen
        listing = await acli("run", "list", "--json", "--nats-url", env.url)
        seen = list(stamps(json.loads(listing.stdout)))
        assert all(s.endswith("Z") for s in seen), seen

        def closed_reader() -> tuple[int, str]:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dagnats", "run", "list", "--nats-url", env.url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=cli_env(),
                cwd=REPO,
            )
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()  # `| head` that has already gone
            with proc.stderr:
                err = proc.stderr.read().decode()
            return proc.wait(timeout=CLI_TIMEOUT_S), err

        code, err = await asyncio.to_thread(closed_reader)
        # Quiet (no BrokenPipeError traceback, no "error:" line), status 1 as click ends it.
        assert err == "" and code == 1


BROKEN_MODULE = """import dagnats

worker = dagnats.Worker()
raise RuntimeError("boom in the module")
"""


def test_a_worker_module_that_fails_to_import_is_one_line_or_a_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.py").write_text(BROKEN_MODULE)
    argv = [sys.executable, "-m", "dagnats", "worker", "broken:worker", "--nats-url", NOWHERE]

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        env = cli_env() | extra
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env, cwd=tmp_path
        )

    plain = run()
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr == (
        "error: cannot import module 'broken': RuntimeError: boom in the module "
        "(DAGNATS_DEBUG=1 shows the traceback)\n"
    )
    debug = run(DAGNATS_DEBUG="1")
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert f'File "{tmp_path / "broken.py"}", line 4, in <module>' in debug.stderr
    assert "RuntimeError: boom in the module" in debug.stderr


def test_a_worker_given_no_time_to_wait_says_what_to_do() -> None:
    # Bounded: dagnats_cli's own timeout (30 s) fails the test if the wait does not end.
    done = dagnats_cli(
        "worker", "examples.hello_pipeline.worker:worker", "--nats-url", NOWHERE, "--wait", "1s"
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == (
        f"waiting up to 1s for NATS at {NOWHERE}: start it with `dagnats serve`, or point "
        "--nats-url / DAGNATS_NATS_URL at a running server"
    )
    assert lines[-1].startswith(f"error: cannot connect to NATS at {NOWHERE}")
    assert lines[-1].endswith("(waited 1s)") and "dagnats serve" in lines[-1]


def spawn_hello_worker(url: str, wait: str) -> subprocess.Popen[str]:
    argv = ["worker", "examples.hello_pipeline.worker:worker", "--nats-url", url, "--wait", wait]
    return subprocess.Popen(
        [sys.executable, "-m", "dagnats", *argv],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=cli_env(),
        cwd=REPO,
    )


async def test_a_worker_started_before_serve_waits_for_it(tmp_path: Path) -> None:
    from dagnats.server import EmbeddedNats, free_port
    from examples.hello_pipeline.workflow import workflow

    url = f"nats://127.0.0.1:{free_port()}"
    proc = await asyncio.to_thread(spawn_hello_worker, url, "60s")
    assert proc.stderr is not None
    try:
        first = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), CLI_TIMEOUT_S)
        assert first.startswith(f"waiting up to 60s for NATS at {url}: start it with `dagnats")
        server = EmbeddedNats(port=int(url.rsplit(":", 1)[1]), data_dir=tmp_path)
        await server.start()
        try:
            async with DagnatsEnv.start(nats_url=url) as env:
                run = await env.client.start(workflow, "World")
                assert await run.result(timeout=CLI_TIMEOUT_S) == "!DLROW ,OLLEH"
                proc.terminate()
                code = await asyncio.to_thread(proc.wait, CLI_TIMEOUT_S)
                assert code == 0
                rest = proc.stderr.read()
                assert f"NATS is up at {url}" in rest
        finally:
            await server.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()
