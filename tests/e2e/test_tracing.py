"""Methodology: one run is one trace across three processes, proved with the SDK's
in-memory exporter. The engine (+ API service), a worker and a client each run in their own
subprocess (``tests/integration/traced_process.py``) with an OpenTelemetry SDK; the client
starts a two-step run and waits for its result; then the engine and worker are stopped and
every process's finished spans are read back. All spans must share the client's trace id,
the names and attributes must be the ones API.md names, the worker's task span must be a
child of the engine's span of that step attempt, and the handler's own span a child of the
worker's. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from dagnats.server.nats_server import EmbeddedNats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCRIPT = HERE.parent / "integration" / "traced_process.py"
WAIT_S = 30.0


async def spawn(role: str, url: str, out: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        role,
        url,
        str(out),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def wait_ready(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), WAIT_S)
    assert line.strip() == b"ready", line


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_one_run_is_one_trace_across_processes(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    url = nats_server.url
    outs = {role: tmp_path / f"{role}.jsonl" for role in ("engine", "worker", "client")}
    engine = await spawn("engine", url, outs["engine"])
    worker = await spawn("worker", url, outs["worker"])
    try:
        await wait_ready(engine)
        await wait_ready(worker)
        client = await spawn("client", url, outs["client"])
        stdout, _ = await asyncio.wait_for(client.communicate(), WAIT_S)
        assert client.returncode == 0
        assert json.loads(stdout)["result"] == "HELLO ADA"
    finally:
        for proc in (engine, worker):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (engine, worker):
            await asyncio.wait_for(proc.wait(), WAIT_S)
    spans = {role: read_spans(path) for role, path in outs.items()}
    run_id = json.loads(stdout)["run_id"]

    start = next(s for s in spans["client"] if s["name"] == "dagnats run.start")
    assert start["kind"] == "CLIENT" and start["parent_id"] is None
    assert start["attributes"]["dagnats.workflow"] == "traced-flow"
    trace_id = start["trace_id"]
    # Every span about this run, in every process, is in the client's trace.
    about_run = [
        (role, s)
        for role, items in spans.items()
        for s in items
        if s["attributes"].get("dagnats.run_id") in (run_id, None)
        and s["name"] != "dagnats workflow.register"
        and not (role == "engine" and s["name"] == "dagnats.api workflow.register")
    ]
    assert {s["trace_id"] for _, s in about_run} == {trace_id}, about_run
    engine_names = {s["name"] for s in spans["engine"]}
    assert {"dagnats.api run.start", "dagnats.apply workflow.started"} <= engine_names
    assert {"dagnats.step greet", "dagnats.step shout", "dagnats.apply step.completed"} <= (
        engine_names
    )

    by_id = {s["span_id"]: s for items in spans.values() for s in items}
    task = next(s for s in spans["worker"] if s["name"] == "dagnats.task greet")
    assert task["kind"] == "CONSUMER"
    assert task["attributes"] == {
        "dagnats.workflow": "traced-flow",
        "dagnats.run_id": run_id,
        "dagnats.step_id": "greet",
        "dagnats.attempt": 1,
        "dagnats.task": "greet",
    }
    step = by_id[task["parent_id"]]
    assert step["name"] == "dagnats.step greet" and step["kind"] == "PRODUCER"
    assert step["attributes"]["dagnats.attempt"] == 1
    handler = next(s for s in spans["worker"] if s["name"] == "handler.greet")
    assert handler["parent_id"] == task["span_id"] and handler["trace_id"] == trace_id
    # The engine applies the worker's result as a child of the worker's span.
    applied = [
        s
        for s in spans["engine"]
        if s["name"] == "dagnats.apply step.completed"
        and s["attributes"]["dagnats.step_id"] == "greet"
    ]
    assert [by_id[s["parent_id"]]["name"] for s in applied] == ["dagnats.task greet"]
    assert applied[0]["attributes"]["dagnats.workflow"] == "traced-flow"
