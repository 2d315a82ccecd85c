"""Methodology: a worker whose start NATS interrupts. A plain nats-server without JetStream
stands in for one restarting or electing a leader: the worker connects, and every JetStream
request of its start gets no responders. The worker must keep trying (bounded by
``start_timeout_s``, logging each try), serve as soon as a JetStream server takes the port,
and run a workflow end to end; with JetStream never back it must raise
``NatsUnavailableError`` naming ``start_timeout_s``; a stop while it waits ends it at once.
The CI once lost a worker this way: the test environment's server was killed while the
worker was still creating its consumers, and the worker's task died of nats-py's timeout.
Real servers only; every wait bounded."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator

import pytest

import dagnats
from dagnats.server.nats_server import EmbeddedNats, find_binary, free_port
from dagnats.testing import DagnatsEnv

WAIT_S = 20.0


class _Tries(logging.Handler):
    """Sets ``retried`` when the worker logs that it will try its start again."""

    def __init__(self) -> None:
        super().__init__()
        self.retried = asyncio.Event()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "unavailable while starting" in record.getMessage():
            self.count += 1
            self.retried.set()


@pytest.fixture
async def tries() -> AsyncIterator[_Tries]:
    handler = _Tries()
    logger = logging.getLogger("dagnats.worker.startup")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


async def _plain_server(port: int) -> subprocess.Popen[bytes]:
    """A nats-server without JetStream on ``port``, once it accepts connections."""
    proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once; the wait below is async)
        [str(find_binary()), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    async with asyncio.timeout(WAIT_S):
        while True:  # a port's readiness has no watch: tried until it answers
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return proc


def _worker(url: str, start_timeout_s: float = 60.0) -> dagnats.Worker:
    worker = dagnats.Worker(url, handle_signals=False, start_timeout_s=start_timeout_s)

    @worker.task()
    async def double(ctx: dagnats.TaskContext, n: int) -> int:
        return 2 * n

    return worker


async def test_a_worker_started_before_jetstream_answers_serves_once_it_does(
    tries: _Tries,
) -> None:
    port = free_port()
    plain = await _plain_server(port)
    worker = _worker(f"nats://127.0.0.1:{port}")
    running = asyncio.create_task(worker.run())
    server = EmbeddedNats(port=port)
    try:
        await asyncio.wait_for(tries.retried.wait(), WAIT_S)
        assert not worker.ready.is_set()
        plain.kill()
        plain.wait(timeout=WAIT_S)
        await server.start()
        await asyncio.wait_for(worker.ready.wait(), WAIT_S)
        async with DagnatsEnv.start(nats_url=server.url) as env:
            wf = dagnats.Workflow("outage")
            wf.step("double")
            run = await env.client.start(wf, 21)
            assert await run.result(timeout=WAIT_S) == 42
    finally:
        plain.kill()
        await worker.stop()
        await asyncio.wait_for(running, WAIT_S)
        await server.close()
    assert tries.count >= 1


async def test_a_worker_jetstream_never_answers_gives_up_after_start_timeout_s() -> None:
    port = free_port()
    plain = await _plain_server(port)
    try:
        worker = _worker(f"nats://127.0.0.1:{port}", start_timeout_s=1.0)
        with pytest.raises(dagnats.NatsUnavailableError, match=r"within 1s \(start_timeout_s\)"):
            await asyncio.wait_for(worker.run(), WAIT_S)
        assert not worker.ready.is_set()
    finally:
        plain.kill()
        plain.wait(timeout=WAIT_S)


async def test_a_worker_stopped_while_it_waits_for_jetstream_returns(tries: _Tries) -> None:
    port = free_port()
    plain = await _plain_server(port)
    try:
        worker = _worker(f"nats://127.0.0.1:{port}")
        running = asyncio.create_task(worker.run())
        await asyncio.wait_for(tries.retried.wait(), WAIT_S)
        await asyncio.wait_for(worker.stop(), WAIT_S)
        await asyncio.wait_for(running, WAIT_S)  # returns: a stop is no error
    finally:
        plain.kill()
        plain.wait(timeout=WAIT_S)


def test_start_timeout_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="start_timeout_s"):
        dagnats.Worker(start_timeout_s=0)
