"""Methodology: ``Serve`` with its embedded nats-server on a temporary data dir (real
processes, no HTTP). A second serve on the same data dir must stop with "data dir in use by
pid N" and leave the first one serving (it used to take the running server for a stale one
and stop it). Killing the nats-server with SIGKILL, or closing the connection for good, must
turn /ready's health false and end serve with a reason (so the process exits non-zero). The
server's own log lines reach the process's log. A worker whose connection is closed for good
raises from run() (so `dagnats worker` exits non-zero). Every wait is bounded."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
from pathlib import Path

import pytest

from dagnats import TaskContext, Worker
from dagnats._nats.types import NatsClient
from dagnats.errors import NatsUnavailableError, ServerError
from dagnats.server import EmbeddedNats
from dagnats.server.serve import Serve, ServeOptions, serve

WAIT_S = 15.0
# dagnats.server exports the function serve, which hides the module of the same name.
serve_mod = importlib.import_module("dagnats.server.serve")


def _opts(data_dir: Path) -> ServeOptions:
    return ServeOptions(port=0, data_dir=data_dir, http=False)


async def test_a_second_serve_on_a_data_dir_in_use_stops_and_harms_nothing(
    tmp_path: Path,
) -> None:
    first = Serve(_opts(tmp_path))
    await first.start()
    try:
        assert first.health.ready()
        second = Serve(_opts(tmp_path))
        with pytest.raises(ServerError, match=f"data dir .* in use by pid {os.getpid()}"):
            await second.start()
        await second.stop()
        assert first.nc is not None and first.nc.is_connected
        assert first.nats is not None and first.nats.pid is not None
        await first.nc.jetstream().account_info()  # still serving
        assert first.health.ready() and not first.fatal.done()
    finally:
        await first.stop()


async def test_the_data_dir_is_free_again_after_stop(tmp_path: Path) -> None:
    for _ in range(2):
        app = Serve(_opts(tmp_path))
        await app.start()
        await app.stop()


async def test_a_killed_nats_server_ends_serve_with_a_reason(tmp_path: Path) -> None:
    app = Serve(_opts(tmp_path))
    await app.start()
    try:
        assert app.nats is not None and app.nats.pid is not None
        os.kill(app.nats.pid, signal.SIGKILL)
        reason = await asyncio.wait_for(app.fatal, WAIT_S)
        assert "embedded nats-server exited" in reason
        assert not app.health.ready()
        report = app.health.report()
        assert report["ready"] is False
    finally:
        await app.stop()


async def test_a_connection_closed_for_good_ends_serve_with_a_reason(tmp_path: Path) -> None:
    app = Serve(_opts(tmp_path))
    await app.start()
    try:
        assert app.nc is not None
        # nats-py fires the same closed callback when a server error ends the connection.
        await app.nc.close()
        reason = await asyncio.wait_for(app.fatal, WAIT_S)
        assert "closed for good" in reason
        assert app.health.report()["parts"] == {
            "nats": {"healthy": False, "detail": "connection to NATS closed"},
            "api": {"healthy": True, "detail": "serving dagnats.api.>"},
            "engine": {"healthy": True, "detail": "consuming the history"},
        }
    finally:
        await app.stop()


async def test_serve_raises_the_reason_so_the_process_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: asyncio.Future[Serve] = asyncio.get_running_loop().create_future()

    class Announcing(Serve):
        async def start(self) -> None:
            await super().start()
            started.set_result(self)

    monkeypatch.setattr(serve_mod, "Serve", Announcing)
    task = asyncio.create_task(serve(_opts(tmp_path), stop=asyncio.Event()))
    app = await asyncio.wait_for(started, WAIT_S)
    assert app.nats is not None and app.nats.pid is not None
    os.kill(app.nats.pid, signal.SIGKILL)
    with pytest.raises(ServerError, match="embedded nats-server exited"):
        await asyncio.wait_for(task, WAIT_S)


async def test_the_nats_server_log_reaches_the_process_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="dagnats.server.nats_server"):
        app = Serve(_opts(tmp_path))
        await app.start()
        await app.stop()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("nats-server: ")]
    assert any("Server is ready" in line for line in lines)


async def test_a_worker_whose_connection_closes_for_good_raises(
    dagnats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = Worker(dagnats_server.url, handle_signals=False)

    @worker.task()
    async def noop(ctx: TaskContext) -> None:
        return None

    opened: asyncio.Future[NatsClient] = asyncio.get_running_loop().create_future()
    real = worker._connect

    async def connect() -> NatsClient:
        nc = await real()
        opened.set_result(nc)
        return nc

    monkeypatch.setattr(worker, "_connect", connect)
    running = asyncio.create_task(worker.run())
    nc = await asyncio.wait_for(opened, WAIT_S)
    await asyncio.wait_for(worker.ready.wait(), WAIT_S)
    await nc.close()  # nats-py fires the same callback when a server error ends it
    with pytest.raises(NatsUnavailableError, match="closed for good"):
        await asyncio.wait_for(running, WAIT_S)
