"""Methodology: a real ``python -m dagnats serve`` (embedded nats-server, engine, API, HTTP) on a
data dir in a temporary directory, and a real ``dagnats worker`` process. While the test
starts three-step runs at a steady pace, ``serve`` and its nats-server are SIGKILLed together
(their process group, as an OOM kill of a container would) and started again on the same
data dir, ``KILLS`` times. After each restart a probe run measures the recovery (kill to a
fresh run completed). Then every acknowledged run must complete with 3, none lost or stuck,
and no event of a run may appear twice in its history. Repeated handler calls are counted
from the worker's ledger (at least once: a task stream forgets message ids across a
restart, ADR 0014). Counts grow with ``--chaos-scale``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from dagnats.server.nats_server import free_port
from tests.chaos.harness import (
    Figures,
    Proc,
    audit,
    client_for,
    probe,
    scale,
    start_load,
    worker_proc,
)

RATE = 10.0  # runs started per second, throughout the kills
KILLS = 3
UP_S = 2.0  # how long serve runs between kills (runs in flight when it dies)


@pytest.mark.timeout(180 * scale())
async def test_serve_sigkill_loop_loses_nothing(
    tmp_path: Path, ledger: Path, figures: Figures
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    serve = Proc.dagnats(
        "serve",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--data-dir",
        str(tmp_path / "data"),
        "--log-level",
        "warning",
    )
    worker = worker_proc(url, ledger)
    started = time.monotonic()
    await serve.start()
    client = await client_for(url)
    try:
        await worker.start()
        wf, load = await start_load(client, rate=RATE)  # everything is up
        for k in range(KILLS * scale()):
            await asyncio.sleep(UP_S)  # serve under load for a while
            await serve.kill()
            killed = time.monotonic()
            figures.kills += 1
            await serve.start()
            figures.recovery_s.append(await probe(client, wf, f"probe-{k}", killed))
        await load.stop()
        await audit(client, client.nc, figures, load.accepted, ledger=ledger)
    finally:
        await client.close()
        await worker.stop()
        await serve.stop()
    figures.seconds = time.monotonic() - started
    figures.check()
