"""Methodology: ``close_within`` on a real nats-server. A drain delivers what was published
just before it; a server that stops reading (SIGSTOP, with megabytes published to it) makes
nats-py's publish and its own close wait forever, and ``close_within`` returns within its
bound with the socket dropped, whether it closes or drains first. The server is resumed
and still serves new connections."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from dagnats._nats.closing import close_within
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.types import ConnectionClosedError
from dagnats.server import EmbeddedNats

WAIT_S = 10.0


async def test_a_drain_delivers_what_was_published_before_it(nats_server: EmbeddedNats) -> None:
    reader = await connect_nats(nats_server.url)
    writer = await connect_nats(nats_server.url)
    try:
        sub = await reader.subscribe("close.within")
        await reader.flush()
        for i in range(100):
            await writer.publish("close.within", str(i).encode())
        await close_within(writer, drain=True)
        assert writer.is_closed
        got = [int((await sub.next_msg(timeout=WAIT_S)).data) for _ in range(100)]
        assert got == list(range(100))
        await close_within(writer)  # already closed: nothing to do
    finally:
        await reader.close()


async def _ends_within(step: Coroutine[Any, Any, None], timeout_s: float) -> float:
    """Seconds ``step`` took; fails if it has not ended within ``timeout_s`` (a bound that
    holds even for a step that swallows its cancellation: it is not waited for)."""
    task = asyncio.ensure_future(step)
    t0 = time.monotonic()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    assert done, f"still running after {timeout_s}s"
    task.result()
    return time.monotonic() - t0


@pytest.mark.parametrize("drain", [False, True], ids=["close", "drain"])
async def test_a_server_that_stops_reading_cannot_hold_the_close(
    nats_server: EmbeddedNats, drain: bool
) -> None:
    nc = await connect_nats(nats_server.url)
    await nc.subscribe("close.sub")  # a drain has a subscription to drain
    pid = nats_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        chunk = b"x" * 60_000

        async def publish_all() -> None:
            for _ in range(400):  # ~24 MB: far beyond what the sockets' buffers take
                await nc.publish("close.stuck", chunk)

        # nats-py's publish itself waits once 2 MB are pending for a server not reading.
        publishing = asyncio.create_task(publish_all())
        await asyncio.wait({publishing}, timeout=1.0)
        assert not publishing.done()  # stuck: the server reads nothing
        # Each phase (the drain, then the close) is bounded by 0.5 s, the drop takes <= 1 s.
        took = await _ends_within(close_within(nc, timeout_s=0.5, drain=drain), WAIT_S)
        assert took < 3.0
        assert nc.is_closed
    finally:
        os.kill(pid, signal.SIGCONT)
    publishing.cancel()
    (ended,) = await asyncio.wait_for(asyncio.gather(publishing, return_exceptions=True), WAIT_S)
    # nats-py swallows that cancellation; the next publish then finds the connection closed.
    assert isinstance(ended, ConnectionClosedError | asyncio.CancelledError)
    fresh = await connect_nats(nats_server.url)  # the server is fine: only that socket went
    try:
        assert fresh.is_connected
    finally:
        await close_within(fresh)
