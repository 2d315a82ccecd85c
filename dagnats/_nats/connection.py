"""Opening a NATS connection: the one call to ``nats.connect``, with its errors translated.

Every process (client, CLI, ``serve``, the test harness, workers) connects through
:func:`connect`, so a refused or unreachable server is always a
:class:`~dagnats.errors.NatsUnavailableError` naming the URL, never a bare nats-py error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError

from dagnats.errors import NatsUnavailableError

ErrorCallback = Callable[[Exception], Awaitable[None]]
Callback = Callable[[], Awaitable[None]]


CONNECT_HINT = (
    "Is it running? Start one with `dagnats serve`, or point --nats-url / DAGNATS_NATS_URL "
    "at a running server"
)


async def connect(
    url: str,
    *,
    connect_timeout_s: float = 5.0,
    max_reconnect_attempts: int = 10,
    reconnect_time_wait_s: float = 2.0,
    error_cb: ErrorCallback | None = None,
    reconnected_cb: Callback | None = None,
) -> NatsClient:
    """Connect to ``url``; ``max_reconnect_attempts=-1`` reconnects for ever after a drop.

    Raises :class:`NatsUnavailableError` (from the nats-py error) when the first connect
    fails, with the last error the client reported, which says more than "no servers".
    """
    seen: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        seen.append(exc)
        if error_cb is not None:
            await error_cb(exc)

    options: dict[str, Any] = {
        "connect_timeout": connect_timeout_s,
        # nats-py retries a first connect as often and as slowly as a reconnect (10 x 2 s
        # by default): two quick tries here, so nothing listening is an error at once; the
        # reconnect budget is set after the first success (nats-py reads it at each drop).
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0.1,
        "error_cb": on_error,
    }
    if reconnected_cb is not None:
        options["reconnected_cb"] = reconnected_cb
    try:
        nc = await nats.connect(url, **options)
    except Exception as exc:
        cause = seen[-1] if seen else exc
        raise NatsUnavailableError(
            f"cannot connect to NATS at {url}: {_describe(cause)}. {CONNECT_HINT}"
        ) from exc
    nc.options["max_reconnect_attempts"] = max_reconnect_attempts
    nc.options["reconnect_time_wait"] = reconnect_time_wait_s
    return nc


def set_reconnect_attempts(nc: NatsClient, attempts: int) -> None:
    """Change how often ``nc`` retries after a drop (nats-py reads it on every reconnect)."""
    nc.options["max_reconnect_attempts"] = attempts


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def request(nc: NatsClient, subject: str, data: bytes, *, timeout_s: float) -> Msg | None:
    """A request/reply; ``None`` when nobody serves ``subject`` (nats-py's no-responders).

    Raises the builtin ``TimeoutError`` when no reply comes in ``timeout_s``.
    """
    try:
        return await nc.request(subject, data, timeout=timeout_s)
    except NoRespondersError:
        return None
