"""Methodology: the seed tutorial (seeds/004) typed as a new user would, with real processes:
``python -m dagnats serve`` on free ports and a temporary data dir, a worker process, and each
CLI command as its own subprocess; outputs and exit codes are checked as text. Shutdown is
checked by signalling ``serve`` and looking for the nats-server pid it wrote. Every wait is
bounded; every process is killed in ``finally``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagnats.server import PID_FILE, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
CLI_TIMEOUT_S = 60.0

PIPELINE = {
    "name": "hello-pipeline",
    "version": "1.0",
    "steps": [
        {"id": "greet", "task": "greet", "depends_on": []},
        {"id": "uppercase", "task": "uppercase", "depends_on": ["greet"]},
        {"id": "reverse", "task": "reverse", "depends_on": ["uppercase"]},
    ],
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGNATS_NATS_URL"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def dagnats(
    *args: str, cwd: Path, timeout: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagnats", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(args: list[str], *, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dagnats", *args],
            cwd=cwd,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an unreaped zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_ready(proc: subprocess.Popen[bytes], http_port: int, log: Path) -> None:
    """Poll GET /ready (process start-up only): at most 20 s in 50 ms steps."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://127.0.0.1:{http_port}/ready"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    pytest.fail(f"serve not ready within {READY_TIMEOUT_S}s:\n{log.read_text()}")


@contextlib.contextmanager
def serving(
    tmp: Path, data_dir: Path, port: int, http_port: int
) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp / "serve.log"
    args = [
        "serve",
        "--port",
        str(port),
        "--http-port",
        str(http_port),
        "--data-dir",
        str(data_dir),
    ]
    proc = spawn(args, cwd=tmp, log=log)
    try:
        wait_ready(proc, http_port, log)
        yield proc
    finally:
        stop(proc)


def nats_pid(data_dir: Path) -> int:
    return int((data_dir / PID_FILE).read_text().strip())


def wait_for_worker(
    url: str, name: str, cwd: Path, proc: subprocess.Popen[bytes], log: Path
) -> None:
    """Until the worker's heartbeat is in the workers bucket (start-up only, bounded)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{log.read_text()}")
        out = dagnats("workers", "--nats-url", url, "--json", cwd=cwd)
        assert out.returncode == 0, out.stderr
        if any(w.get("name") == name for w in json.loads(out.stdout)):
            return
        time.sleep(0.05)
    pytest.fail(f"worker {name} did not register within {READY_TIMEOUT_S}s:\n{log.read_text()}")


def test_first_workflow_tutorial(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    url = f"nats://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    (tmp_path / "pipeline.json").write_text(json.dumps(PIPELINE, indent=2))
    worker_log = tmp_path / "worker.log"
    with serving(tmp_path, data_dir, port, http_port) as serve:
        pid = nats_pid(data_dir)
        assert alive(pid)
        worker = spawn(
            ["worker", "examples.hello_pipeline.worker:worker", "--nats-url", url],
            cwd=REPO,
            log=worker_log,
        )
        try:
            out = dagnats("workflow", "register", "pipeline.json", "--nats-url", url, cwd=tmp_path)
            assert out.returncode == 0, out.stderr
            assert out.stdout.startswith("Registered workflow hello-pipeline version 1.0")

            wait_for_worker(url, "hello-worker", tmp_path, worker, worker_log)

            out = dagnats(
                "run",
                "start",
                "hello-pipeline",
                '"World"',
                "--watch",
                "--nats-url",
                url,
                cwd=tmp_path,
            )
            assert out.returncode == 0, out.stdout + out.stderr
            lines = out.stdout.splitlines()
            m = re.fullmatch(r"Run (\S+) started", lines[0])
            assert m, out.stdout
            run_id = m.group(1)
            for step in ("greet", "uppercase", "reverse"):
                assert f"step.{step}: completed" in lines
            assert f"Run {run_id} completed" in lines
            assert "!DLROW ,OLLEH" in out.stdout

            out = dagnats("run", "status", run_id, "--nats-url", url, cwd=tmp_path)
            assert out.returncode == 0, out.stderr
            assert f"Run: {run_id}" in out.stdout
            assert "Status: completed" in out.stdout
            assert '  greet: completed "Hello, World!"' in out.stdout
            assert '  uppercase: completed "HELLO, WORLD!"' in out.stdout
            assert '  reverse: completed "!DLROW ,OLLEH"' in out.stdout

            out = dagnats("run", "events", run_id, "--nats-url", url, cwd=tmp_path)
            assert out.returncode == 0, out.stderr
            types = [line.split()[2] for line in out.stdout.splitlines()]
            assert types[0] == "workflow.started"
            assert types[-1] == "workflow.completed"
            assert types.count("step.completed") == 3

            out = dagnats("run", "output", run_id, "--nats-url", url, cwd=tmp_path)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout) == "!DLROW ,OLLEH"

            # Input that is not JSON is refused, naming the problem; a string is JSON too.
            out = dagnats(
                "run", "start", "hello-pipeline", "Ada", "--watch", "--nats-url", url, cwd=tmp_path
            )
            assert out.returncode == 2 and "is not valid JSON" in out.stderr
            out = dagnats(
                "run",
                "start",
                "hello-pipeline",
                '"Ada"',
                "--watch",
                "--nats-url",
                url,
                cwd=tmp_path,
            )
            assert out.returncode == 0, out.stdout + out.stderr
            assert "!ADA ,OLLEH" in out.stdout

            out = dagnats(
                "run",
                "list",
                "--workflow",
                "hello-pipeline",
                "--json",
                "--nats-url",
                url,
                cwd=tmp_path,
            )
            assert out.returncode == 0, out.stderr
            listed = json.loads(out.stdout)
            assert run_id in {r["run_id"] for r in listed}
            assert {r["status"] for r in listed} == {"completed"}

            out = dagnats("status", "--nats-url", url, cwd=tmp_path)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "JetStream:  ok" in out.stdout and "API:        ok" in out.stdout
            assert "Workflows:  1" in out.stdout

            out = dagnats("run", "status", "no-such-run", "--nats-url", url, cwd=tmp_path)
            assert out.returncode == 1
            assert out.stdout == ""
            assert out.stderr.startswith("error: run 'no-such-run' not found")
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    stop(worker)
                    pytest.fail(f"worker ignored SIGTERM:\n{worker_log.read_text()}")

        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not stop within {STOP_TIMEOUT_S}s after SIGTERM")
        assert code == 0, (tmp_path / "serve.log").read_text()
        assert not alive(pid), f"nats-server {pid} outlived serve"
        assert not (data_dir / PID_FILE).exists()


def test_sigkilled_serve_leaves_no_blocker(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    pids: list[int] = []
    try:
        with serving(tmp_path, data_dir, port, http_port) as first:
            pids.append(nats_pid(data_dir))
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=STOP_TIMEOUT_S)
        # Same ports, same store: the orphaned nats-server (if any) must not block it.
        with serving(tmp_path, data_dir, port, http_port) as second:
            pids.append(nats_pid(data_dir))
            assert not alive(pids[0]), "the first nats-server is still running"
            out = dagnats("status", "--nats-url", f"nats://127.0.0.1:{port}", cwd=tmp_path)
            assert out.returncode == 0, out.stdout + out.stderr
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=STOP_TIMEOUT_S) == 0
        assert not alive(pids[1])
    finally:
        for pid in pids:  # nats-servers our serve processes started
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
