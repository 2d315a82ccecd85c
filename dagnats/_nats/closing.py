"""Closing a NATS connection within a bound, whatever state the connection or server is in.

nats-py's ``close()`` and ``drain()`` write out what is pending and wait for the socket to
drain, which never ends while the server is not reading it (seen with thousands of runs'
events queued under CI load, and with a stopped server); ``drain()`` also swallows a
cancellation and then waits for a PONG, so ``asyncio.wait_for`` around it does not bound
it; and a client that is reconnecting refuses to drain. Every shutdown path (``serve``, the
worker, ``Client.close``, the CLI, the test harness) closes through :func:`close_within`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from dagnats._nats.types import NatsClient

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
SETTLE_S = 1.0  # how long a dropped connection's close is given to notice and end


async def close_within(
    nc: NatsClient, timeout_s: float = CLOSE_TIMEOUT_S, *, drain: bool = False
) -> None:
    """Close ``nc`` (``drain``: drain it first, which lets its subscriptions finish what they
    hold and sends what is pending), each phase bounded by ``timeout_s``. A drain that does
    not end in time, or that the connection refuses (it is reconnecting), is followed by a
    close; a close that does not end in time drops the socket, as a dead process's would
    be, and cancels the subscriptions' reader tasks."""
    if nc.is_closed:
        return
    if drain and nc.is_connected and await _ends_within(nc.drain(), timeout_s) and nc.is_closed:
        return
    closing = asyncio.ensure_future(nc.close())
    if await _ends_within(closing, timeout_s):
        return
    log.warning("the NATS connection did not close within %gs: dropping it", timeout_s)
    _drop(nc)
    await _ends_within(closing, SETTLE_S)  # its wait on the socket fails now


async def _ends_within(
    step: Coroutine[Any, Any, None] | asyncio.Future[None], timeout_s: float
) -> bool:
    """Whether ``step`` ended, well or not, within ``timeout_s`` (its error is moot: the
    connection is going either way). One that has not is left running; it ends once the
    connection is closed or dropped, and its outcome is then ignored."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    task.add_done_callback(_ignore)
    return bool(done)


def _ignore(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


def _drop(nc: NatsClient) -> None:
    # nats-py has no public abort: these attributes are its TcpTransport's and Client's.
    writer = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    if writer is not None:
        writer.transport.abort()
    for sub in list(getattr(nc, "_subs", {}).values()):
        task = getattr(sub, "_wait_for_msgs_task", None)
        if task is not None and not task.done():
            task.cancel()
