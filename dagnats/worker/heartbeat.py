"""Keep delivered task messages alive with ``in_progress()`` while they wait or run.

One loop serves every tracked message (instead of a timer task per message): each tick it
sends ``+WPI`` for the messages not heard from for half a period, so no message goes longer
than about one period (``ack_wait / 3``) without a heartbeat and none is redelivered while
this process still holds it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dagnats._nats.tasks import stop_task
from dagnats._nats.types import Msg

log = logging.getLogger(__name__)


class Heartbeater:
    def __init__(self, period_s: float) -> None:
        if period_s <= 0:
            raise ValueError("heartbeat period must be positive")
        self.period_s = period_s
        # Keyed by id(): nats-py's Msg is an unhashable dataclass. Entries hold the Msg, so
        # an id cannot be reused while its entry exists.
        self._last: dict[int, tuple[Msg, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def track(self, msg: Msg) -> None:
        self._last[id(msg)] = (msg, time.monotonic())

    def untrack(self, msg: Msg) -> None:
        self._last.pop(id(msg), None)

    def __len__(self) -> int:
        return len(self._last)

    async def beat(self, msg: Msg) -> None:
        """Heartbeat ``msg`` now (``ctx.heartbeat()``)."""
        await msg.in_progress()
        if id(msg) in self._last:
            self._last[id(msg)] = (msg, time.monotonic())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dagnats-worker-heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        self._last.clear()

    async def _run(self) -> None:
        half = self.period_s / 2
        while True:
            await asyncio.sleep(half)
            now = time.monotonic()
            due = [m for m, t in self._last.values() if now - t >= half]
            for msg in due:
                if id(msg) not in self._last:  # finished while we were sending others
                    continue
                try:
                    await msg.in_progress()
                except Exception as exc:  # noqa: BLE001 - disconnected: the ack timer runs on
                    log.debug("heartbeat failed: %s", exc)
                if id(msg) in self._last:
                    self._last[id(msg)] = (msg, now)
