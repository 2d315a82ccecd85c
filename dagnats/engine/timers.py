"""The universal timer: messages on ``TIMERS`` naked with a delay until they are due.

Retries, sleeps, loop delays and timeouts are all one mechanism (DESIGN.md §5). A due timer
becomes a ``timer.fired`` event on the run's history; the engine decides what it means, and
a stale timer (its step moved on) is a no-op there. Long delays are re-armed at most every
hour so a timer never depends on one very long server-side delay.

The clock is a seam (:class:`TimerClock`): it tells the time and puts a timer that is not
due yet aside until it is. The wall clock naks it with the delay; a test's virtual clock
(``dagnats.testing``) keeps it unacked and hands it back, with a plain nak, when the
virtual time reaches it. Either way the timer is a real message on ``TIMERS``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime
from typing import Protocol

from dagnats import protocol
from dagnats._nats.consumers import ConsumerLoop
from dagnats._nats.kvscan import get_entry
from dagnats._nats.publish import append_event, msg_id
from dagnats._nats.types import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValue,
    Msg,
    NatsClient,
)
from dagnats.dag.machine.state import RUN_TERMINAL
from dagnats.engine.limits import check_limits, release_slots
from dagnats.engine.scheduled import start_scheduled
from dagnats.protocol import clock
from dagnats.protocol import events as ev
from dagnats.protocol.messages import DeferredTask, TimerMessage
from dagnats.telemetry import metrics, tracing

log = logging.getLogger(__name__)

MAX_NAK_DELAY_S = 3600.0
SCHEDULED_KIND = "scheduled"  # a scheduled run's start (engine/scheduled.py)
EARLY_S = 0.001  # fire when due within a millisecond: nak delays land 1-2 ms late anyway
# Handling a timer takes one publish; a timer not due is naked with its delay at once. So
# the ack wait only matters when that nak is lost (the server killed while it was on the
# wire): then the timer comes back after this, not after 30 s (a 1 s sleep waited 30 s).
TIMER_ACK_WAIT_S = 6.0


class TimerClock(Protocol):
    """What the timer service asks of a clock."""

    def now(self) -> datetime:
        """The time of day (timezone-aware) that timers are due against."""
        ...

    async def defer(self, msg: Msg, fire_at: datetime, remaining_s: float) -> None:
        """Have ``msg`` (a timer due at ``fire_at``, ``remaining_s`` from now) delivered
        again when it is due; it must stay unacked until then."""
        ...


class WallClock:
    """The installed process clock (``dagnats.protocol.clock``); waits are nak delays."""

    def now(self) -> datetime:
        return clock.now()

    async def defer(self, msg: Msg, fire_at: datetime, remaining_s: float) -> None:
        await msg.nak(delay=min(remaining_s, MAX_NAK_DELAY_S))


class TimerService(ConsumerLoop):
    def __init__(
        self,
        nc: NatsClient,
        kv: dict[str, KeyValue] | None = None,
        *,
        max_inflight: int = 1000,
        clock: TimerClock | None = None,
    ) -> None:
        super().__init__(
            nc,
            protocol.TIMER_STREAM,
            ConsumerConfig(
                durable_name=protocol.TIMER_CONSUMER,
                filter_subject="timer.>",
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=TIMER_ACK_WAIT_S,
                max_deliver=-1,
                # Timers waiting out a nak delay count as pending acks: no cap, or a busy
                # system's sleeps and backstops would stop every other timer.
                max_ack_pending=-1,
            ),
            max_inflight=max_inflight,
            concurrent=True,  # each due timer is one publish: let them overlap
        )
        self.kv = kv or {}
        self.fired = 0
        self.clock: TimerClock = clock or WallClock()

    async def _dispatch(self, msg: Msg, run_id: str, task: DeferredTask) -> None:
        """A task deferred by its rate limit or concurrency limit: try the limits again."""

        if await self._run_ended(run_id):
            # Its slots were released when the run ended; taking one now would leak it.
            await msg.ack()
            return
        wait_s = await check_limits(self.kv, task.limits())
        if wait_s is not None:
            await msg.nak(delay=max(0.01, min(wait_s, MAX_NAK_DELAY_S)))
            return
        if await self._run_ended(run_id):
            # The run ended while we took the slot (its release may have run before): give
            # the slot back ourselves, or nobody would.
            if task.max_task_concurrency:
                await release_slots(
                    self.kv[protocol.KV_CONCURRENCY], task.task_name, holder=task.holder
                )
            await msg.ack()
            return
        await self.js.publish(task.subject, task.body.encode(), headers=msg_id(task.holder))
        await msg.ack()

    async def _run_ended(self, run_id: str) -> bool:
        runs = self.kv.get(protocol.KV_RUNS)
        if runs is None:
            return False
        entry = await get_entry(runs, run_id)
        if entry is None:
            return False
        try:  # the top-level status (an oversized snapshot's marker carries it too)
            return json.loads(entry.value or b"{}").get("status") in RUN_TERMINAL
        except ValueError:
            return False

    async def handle(self, msg: Msg) -> None:
        try:
            timer = TimerMessage.model_validate_json(msg.data)
            remaining = (timer.fire_at - self.clock.now()).total_seconds()
            if remaining > EARLY_S:
                await self.clock.defer(msg, timer.fire_at, remaining)
                return
            if timer.kind == SCHEDULED_KIND:
                scheduled = self.kv.get(protocol.KV_SCHEDULED)
                if scheduled is None:
                    raise RuntimeError("the timer service has no scheduled_runs bucket")
                await start_scheduled(self.js, scheduled, timer.run_id)
                await msg.ack()
                return
            if timer.kind == "dispatch":
                if timer.task is None:
                    raise ValueError("a dispatch timer without its task")
                await self._dispatch(msg, timer.run_id, timer.task)
                return
            # A due timer continues the trace of what set it (its headers carry the parent).
            with tracing.span(
                f"dagnats.timer {timer.kind}",
                {tracing.RUN_ID: timer.run_id, tracing.STEP_ID: timer.step_id},
                parent=msg.headers,
                kind="consumer",
            ):
                await append_event(self.js, *ev.timer_fired(timer))
            await msg.ack()
            self.fired += 1
            # A deferred dispatch waits for its limits, not its time: only real timers count.
            metrics.observe_timer(timer.kind, timer.fire_at)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping a malformed timer on %s: %s", msg.subject, exc)
            with contextlib.suppress(Exception):
                await msg.term()
        except Exception as exc:  # noqa: BLE001 - any other failure: nak and retry soon
            log.warning("timer on %s not delivered, retrying soon: %s", msg.subject, exc)
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
