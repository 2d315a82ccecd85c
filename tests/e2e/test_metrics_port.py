"""Methodology: ``dagnats engine --metrics-port 0`` and ``dagnats worker ... --metrics-port 0``
run as subprocesses against a real nats-server; each logs the address it serves metrics on,
which is scraped and parsed with ``prometheus_client.parser``: the engine's and the worker's
series are there, and the engine's ``dagnats_tasks_pending`` reads the work queue."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dagnats.server.nats_server import EmbeddedNats

ROOT = Path(__file__).resolve().parent.parent.parent
WAIT_S = 30.0
ADDRESS = re.compile(rb"metrics on (http://127\.0\.0\.1:\d+/metrics)")


async def start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dagnats",
        *args,
        "--metrics-port",
        "0",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stderr is not None
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), WAIT_S)
        assert line, "the process ended before serving metrics"
        found = ADDRESS.search(line)
        if found:
            return proc, found.group(1).decode()


async def families(url: str) -> set[str]:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(url)
    assert resp.status_code == 200
    return {f.name for f in text_string_to_metric_families(resp.text)}


async def test_engine_and_worker_serve_their_metrics(nats_server: EmbeddedNats) -> None:
    url = nats_server.url
    engine, engine_metrics = await start("engine", "--nats-url", url)
    worker, worker_metrics = await start(
        "worker", "examples.hello_pipeline.worker:worker", "--nats-url", url
    )
    try:
        names = await families(engine_metrics)
        assert {
            "dagnats_runs_started",
            "dagnats_runs_finished",
            "dagnats_steps_finished",
            "dagnats_step_duration_seconds",
            "dagnats_tasks_pending",
            "dagnats_engine_events_applied",
            "dagnats_timer_lag_seconds",
        } <= names
        assert {"dagnats_worker_tasks", "dagnats_worker_handler_seconds"} <= await families(
            worker_metrics
        )
    finally:
        for proc in (engine, worker):
            proc.send_signal(signal.SIGTERM)
        for proc in (engine, worker):
            await asyncio.wait_for(proc.wait(), WAIT_S)
