"""A worker's connection to NATS, and its start tried again while NATS is unavailable.

The first connection is bounded (``CONNECT_TIMEOUT_S``): a wrong URL must be an error, not
a silent hang. Once connected, a worker reconnects for as long as it runs.

Its start must be as patient. Creating its streams, consumers and directory entry takes a
few dozen JetStream requests, and a nats-server restart or a cluster's leader election in
the middle fails one of them (no answer in time, no responders, 503). Such a start is taken
down and tried again, with a doubling wait, until ``timeout_s`` has passed; any other error
(a consumer that clashes with another, a bad configuration) is raised at once, since no
retry can change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from dagnats._nats.closing import close_within
from dagnats._nats.connection import is_outage, server_urls, tolerate_abandoned_pongs
from dagnats._nats.types import NatsClient
from dagnats.errors import NatsUnavailableError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
RECONNECT_WAIT_S = 0.25  # between tries of one server after a drop (the first is at once)

FIRST_WAIT_S = 0.25  # before the second try
MAX_WAIT_S = 4.0  # the wait doubles up to this


async def start_through_outages(
    who: str,
    start: Callable[[], Awaitable[None]],
    take_down: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    timeout_s: float,
) -> None:
    """``await start()`` until it succeeds, ``stop`` is set or ``timeout_s`` has passed;
    ``take_down()`` undoes what a failed try set up before the next one.

    Raises ``NatsUnavailableError`` naming ``start_timeout_s`` when NATS stayed unavailable,
    and whatever else ``start()`` raised at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    wait_s = FIRST_WAIT_S
    while True:
        try:
            await start()
            return
        except Exception as exc:
            if not is_outage(exc):
                raise
            why = str(exc) or type(exc).__name__
            if loop.time() + wait_s > deadline:
                raise NatsUnavailableError(
                    f"{who}: NATS did not let it start within {timeout_s:g}s "
                    f"(start_timeout_s): {why}"
                ) from exc
            log.warning(
                "%s: NATS unavailable while starting (%s); trying again in %.2gs", who, why, wait_s
            )
        await take_down()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait_s)
        if stop.is_set():
            return
        wait_s = min(wait_s * 2, MAX_WAIT_S)


async def connect_worker(
    name: str, url: str, stopping: Callable[[], bool], closed: Callable[[str], None]
) -> NatsClient:
    """Worker ``name``'s connection to ``url``: reconnects forever, logs each drop unless
    ``stopping()``, and calls ``closed(why)`` if it is closed for good while running."""
    closing = False  # a failed connect's own close is no disconnection worth a warning

    async def on_error(exc: Exception) -> None:
        log.warning("worker %s: NATS error: %s", name, exc)

    async def on_disconnect() -> None:
        if not (stopping() or closing):  # closing at shutdown disconnects too: not news
            log.warning("worker %s: disconnected from NATS; reconnecting", name)

    async def on_closed() -> None:
        if not (stopping() or closing):
            why = f"worker {name}: the NATS connection was closed for good"
            log.error("%s; stopping", why)
            closed(why)

    async def on_reconnect() -> None:
        log.info("worker %s: reconnected to NATS", name)

    nc = NatsClient()
    try:
        await asyncio.wait_for(
            nc.connect(
                server_urls(url),
                reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
                name=f"dagnats-worker-{name}",
                max_reconnect_attempts=-1,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                closed_cb=on_closed,
            ),
            CONNECT_TIMEOUT_S,
        )
    except Exception as exc:
        closing = True
        with contextlib.suppress(Exception):
            await nc.close()
        reason = (
            f"no answer within {CONNECT_TIMEOUT_S:.0f}s"
            if isinstance(exc, TimeoutError)
            else str(exc)
        )
        raise NatsUnavailableError(
            f"worker {name}: cannot connect to NATS at {url}: {reason}"
        ) from exc
    return tolerate_abandoned_pongs(nc)  # one timed-out flush must not stop its reads


async def close_worker(nc: NatsClient) -> None:
    """Drain the worker's own connection (what it has published goes out), bounded: past
    ``CLOSE_TIMEOUT_S`` the socket is dropped (``close_within``)."""
    await close_within(nc, drain=True)
