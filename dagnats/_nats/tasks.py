"""Stopping a background task without swallowing the caller's own cancellation.

``task.cancel()`` followed by ``with contextlib.suppress(BaseException): await task`` eats
a ``CancelledError`` meant for the *caller* too, if the caller is cancelled while it waits.
That hung an engine's stop: its lease loop was cancelled while a lost partition's teardown
waited for the partition's intake task that way; the loop ate the cancellation, went on
renewing, and ``PartitionLeases.stop`` waited for it for good. :func:`stop_task`
waits with ``asyncio.wait``, which never raises the task's outcome but lets the caller's
cancellation through.

Nothing here touches NATS: it sits in ``_nats/`` because that is the lowest layer every
part that runs background tasks (engine, worker, server, cli, testing) already imports.
(Not to be confused with stopping a *run*: ``server.operations`` cancels runs.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def stop_task(task: asyncio.Future[Any], timeout_s: float | None = None) -> None:
    """Cancel ``task`` (a task or a future) and wait, at most ``timeout_s``, until it has
    ended; its outcome is not raised here."""
    task.cancel()
    await asyncio.wait([task], timeout=timeout_s)
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.debug("%r ended with %r while being stopped", task, task.exception())
