"""Keep a nats-py connection reading after a flush that timed out or was cancelled.

nats-py 2.16 queues one future per PING in ``Client._pongs`` and resolves the oldest on
each PONG. A ``flush()`` that times out (or whose caller is cancelled, as
``asyncio.wait_for(sub.drain(), ...)`` does) leaves its future cancelled in that list;
when its PONG comes, ``set_result`` raises ``InvalidStateError`` inside the read loop,
whose catch-all only logs it ("nats: encountered error") and stops reading. The client
still reports itself connected, but nothing more is read: every reply, publish ack and
pull delivery is lost until the process restarts (upstream: nats-io/nats.py PR #914, the
zombie read loop; issue #624, the same cancelled-future fault in the flusher).

Seen under load: a busy engine's feed drain timed out after a lease loss, and the engine
stopped for good with thousands of runs backlogged. :func:`tolerate_abandoned_pongs`
replaces the PONG handler of one client with one that skips a future nobody waits for
(its PONG still answers that PING: PONGs come back in order).
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NatsClient


def tolerate_abandoned_pongs(nc: NatsClient) -> NatsClient:
    """Make ``nc`` resolve PONGs without failing on an abandoned flush (idempotent);
    returns ``nc``."""
    if getattr(nc, "_dagnats_pongs", False):
        return nc

    async def process_pong() -> None:
        pongs: list[asyncio.Future[bool]] = nc._pongs
        if pongs:
            future = pongs.pop(0)
            if not future.done():  # cancelled: its flush gave up waiting
                future.set_result(True)
            nc._pongs_received += 1
            nc._pings_outstanding = 0

    # nats-py's parser looks the handler up on the client at each PONG.
    setattr(nc, "_process_pong", process_pong)  # noqa: B010 - assigning a method: mypy refuses
    setattr(nc, "_dagnats_pongs", True)  # noqa: B010
    return nc
