"""The trigger service: runs every enabled trigger in the ``triggers`` bucket.

In ``serve``, or alone as ``dagnats triggers``; any number may run at once:

- cron: each minute boundary, every cron trigger whose expression matches the minute (in its
  time zone) fires through :meth:`TriggerOps.fire_minute`, whose run id and dedup id are
  the same in every service, so a minute is one run. With ``backfill`` the minutes missed
  while no service ran (at most 100) fire too.
- subject: a queue subscription (group ``dagnats-triggers``): one service gets each message.
- debounce: starts are held in ``trigger_debounce`` and released by timers on ``TIMERS``
  (:mod:`dagnats.server.debounce`).

The clock is injectable (``now``) so tests drive minutes deterministically with
:meth:`TriggerService.tick`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from dagnats._nats.types import Msg, NatsClient, Subscription
from dagnats.dag.definition.triggers import MAX_BACKFILL_MINUTES, TriggerDef, cron_zone
from dagnats.errors import DagnatsError
from dagnats.protocol import clock
from dagnats.server.debounce import Debouncer
from dagnats.server.trigger_ops import TriggerOps

log = logging.getLogger(__name__)

QUEUE_GROUP = "dagnats-triggers"
MAX_SUBJECT_BODY_BYTES = 1024 * 1024
MAX_PENDING_STARTS = 1000  # subject messages being started at once, per service


def unix_minute(at: datetime) -> int:
    return int(at.timestamp() // 60)


def cron_matches(trigger: TriggerDef, minute: int) -> bool:
    """Whether the trigger's expression matches this unix minute in its time zone."""
    if trigger.cron is None:
        return False
    local = datetime.fromtimestamp(minute * 60, UTC).astimezone(cron_zone(trigger.cron.timezone))
    return bool(croniter.match(trigger.cron.expression, local))


class TriggerService:
    def __init__(
        self, nc: NatsClient, triggers: TriggerOps, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.nc = nc
        self.triggers = triggers
        self.now = now or clock.now
        self.debouncer = Debouncer(nc, triggers, now=self.now)
        self._cursor: dict[str, int] = {}  # per cron trigger: the last minute looked at
        self._subs: dict[str, tuple[str, Subscription]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.fired = 0
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await self.debouncer.start()
        await self.reconcile()
        self._loops = [
            asyncio.create_task(self._cron_loop(), name="dagnats-cron"),
            asyncio.create_task(self._watch_loop(), name="dagnats-trigger-watch"),
        ]
        log.info("trigger service started (%d triggers)", len(self.triggers.index))

    async def stop(self) -> None:
        # The stop event ends the loops even if a cancel is swallowed by a NATS call in
        # flight (asyncio.wait_for in Python 3.11 can lose one).
        self._stopping.set()
        for loop in self._loops:
            loop.cancel()
        if self._loops:
            await asyncio.wait(self._loops, timeout=5.0)
        self._loops = []
        for _, sub in self._subs.values():
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        await self.debouncer.stop()

    # --- cron ---

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Fire every cron minute due up to ``now``; the run ids started by this service."""
        current = unix_minute(now or self.now())
        started = []
        for trigger in list(self.triggers.index.values()):
            if trigger.cron is None or not trigger.enabled:
                self._cursor.pop(trigger.id, None)
                continue
            for minute in await self._due_minutes(trigger, current):
                try:
                    run_id = await self.triggers.fire_minute(trigger, minute)
                except DagnatsError as exc:
                    log.error("cron trigger %s, minute %d: %s", trigger.id, minute, exc)
                    continue
                if run_id is not None:
                    started.append(run_id)
                    self.fired += 1
            self._cursor[trigger.id] = current
        return started

    async def _due_minutes(self, trigger: TriggerDef, current: int) -> list[int]:
        cursor = self._cursor.get(trigger.id)
        if cursor is None:
            # New to this service: without backfill only the current minute (a restart
            # inside it repeats nothing: the dedup id); with it, the minutes since the last
            # one any service fired, at most MAX_BACKFILL_MINUTES.
            cursor = current - 1
            if trigger.cron is not None and trigger.cron.backfill:
                last = (await self.triggers.state_of(trigger.id)).last_minute
                if last is not None:
                    cursor = max(last, current - MAX_BACKFILL_MINUTES)
        first = max(cursor + 1, current - MAX_BACKFILL_MINUTES + 1)
        return [m for m in range(first, current + 1) if cron_matches(trigger, m)]

    async def _cron_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception as exc:  # noqa: BLE001 - NATS trouble: the next minute retries
                log.warning("cron tick failed: %s", exc)
            now = self.now()
            with contextlib.suppress(TimeoutError):  # the next minute boundary, or stop
                await asyncio.wait_for(
                    self._stopping.wait(), 60.0 - (now.timestamp() % 60.0) + 0.05
                )

    # --- subject triggers ---

    async def _watch_loop(self) -> None:
        while not self._stopping.is_set():
            await self.triggers.changed.wait()
            self.triggers.changed.clear()
            try:
                await self.reconcile()
            except Exception as exc:  # noqa: BLE001 - retried on the next change
                log.warning("trigger reconcile failed: %s", exc)

    async def reconcile(self) -> None:
        """Subscribe to the subjects of enabled subject triggers; drop the others."""
        wanted = {
            t.id: t.subject.subject
            for t in self.triggers.index.values()
            if t.subject is not None and t.enabled
        }
        for tid, (subject, sub) in list(self._subs.items()):
            if wanted.get(tid) != subject:
                del self._subs[tid]
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        for tid, subject in wanted.items():
            if tid not in self._subs:
                sub = await self.nc.subscribe(subject, queue=QUEUE_GROUP, cb=self._on_message(tid))
                self._subs[tid] = (subject, sub)

    def _on_message(self, trigger_id: str) -> Callable[[Msg], Any]:
        async def cb(msg: Msg) -> None:
            if len(self._tasks) >= MAX_PENDING_STARTS:
                log.warning("subject trigger %s: too many starts in flight; dropped", trigger_id)
                await _reply(msg, {"error": "busy"})
                return
            task = asyncio.create_task(self._subject_fire(trigger_id, msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return cb

    async def _subject_fire(self, trigger_id: str, msg: Msg) -> None:
        trigger = self.triggers.index.get(trigger_id)
        if trigger is None or not trigger.enabled:
            return
        try:
            data = json.loads(msg.data) if msg.data else None
        except ValueError as exc:
            log.warning(
                "subject trigger %s: message on %s is not JSON: %s", trigger_id, msg.subject, exc
            )
            await _reply(msg, {"error": f"the message body is not JSON: {exc}"})
            return
        try:
            if trigger.debounce is not None:
                await self.debouncer.hold(trigger, "subject", data)
                await _reply(msg, {"held": True})
                return
            run_id = await self.triggers.start(trigger, "subject", data)
            self.fired += 1
            await _reply(msg, {"run_id": run_id})
        except DagnatsError as exc:
            log.warning("subject trigger %s: %s", trigger_id, exc)
            await _reply(msg, {"error": str(exc)})


async def _reply(msg: Msg, body: dict[str, Any]) -> None:
    if msg.reply:
        with contextlib.suppress(Exception):
            await msg.respond(json.dumps(body).encode())
