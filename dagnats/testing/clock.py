"""Time skipping: a virtual clock for the timers, moved on when the environment is quiet.

The timers stay real messages on ``TIMERS``; only their due time is virtual. The engine's
timer service asks :class:`VirtualClock` for the time and hands it each timer that is not
due yet; the clock keeps it unacked (refreshing its ack wait) and, when virtual time
reaches it, naks it without delay, so NATS delivers it again and it fires as usual.

:class:`TimeSkipper` decides when time moves: when nothing is queued or running (no task
message in ``TASK_QUEUES``, nothing pending or unacked on the engine's, the correlator's
or the timers' consumer beyond the timers held here, no publish between two looks), it
jumps to the next held timer. It does not jump while a run waits for the outside world (an
open approval, a ``wait_for_event`` step): the test is about to answer it, and jumping to
its deadline would race the test; ``env.sleep()`` moves time past such deadlines on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from datetime import UTC, datetime, timedelta

from dagnats import protocol
from dagnats._nats.probe import backlog, engine_backlog, outside_waits
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import JetStreamContext, Msg
from dagnats.engine.correlator import CORRELATOR_CONSUMER
from dagnats.engine.timers import TIMER_ACK_WAIT_S

log = logging.getLogger(__name__)

KEEPALIVE_S = TIMER_ACK_WAIT_S / 3  # refresh held timers well before their ack wait
QUIET_GAP_S = 0.002  # two looks this far apart must agree that nothing moved
POLL_MAX_S = 0.05  # how often a busy environment is looked at, at most
OUTSIDE_POLL_S = 0.05  # how often a run waiting for the outside world is looked at again
RECHECK_S = 0.5  # a quiet environment that got busy again: the next round waits it out
EARLY_S = 0.001  # the timer service fires a timer due within a millisecond
STOP_TRIES = 50  # cancellations of the skipper at stop, each followed by a short wait
STOP_WAIT_S = 0.1


class VirtualClock:
    """A clock that stands still until it is moved, holding the timers not yet due."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._held: list[tuple[datetime, int, Msg]] = []
        self._order = itertools.count()
        self.held_changed = asyncio.Event()
        self._keepalive: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        return self._now

    @property
    def held(self) -> int:
        return len(self._held)

    def next_due(self) -> datetime | None:
        return self._held[0][0] if self._held else None

    async def defer(self, msg: Msg, fire_at: datetime, remaining_s: float) -> None:
        heapq.heappush(self._held, (fire_at, next(self._order), msg))
        self.held_changed.set()
        if self._keepalive is None:
            self._keepalive = asyncio.create_task(self._refresh(), name="dagnats-virtual-clock")

    async def advance_to(self, when: datetime) -> int:
        """Move to ``when`` (never backwards) and hand back every timer due by then."""
        if when > self._now:
            self._now = when
        released = 0
        while self._held and self._held[0][0] - self._now <= timedelta(seconds=EARLY_S):
            _, _, msg = heapq.heappop(self._held)
            with contextlib.suppress(Exception):  # its delivery is gone: it comes back anyway
                await msg.nak()
            released += 1
        return released

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            for _, _, msg in list(self._held):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def close(self) -> None:
        if self._keepalive is not None:
            await stop_task(self._keepalive)
            self._keepalive = None


class TimeSkipper:
    """Moves a :class:`VirtualClock` to the next timer whenever the environment is quiet."""

    def __init__(self, js: JetStreamContext, clock: VirtualClock) -> None:
        self.js = js
        self.clock = clock
        self.lock = asyncio.Lock()  # one mover at a time: the skipper or env.sleep()
        self.jumps = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="dagnats-time-skipper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        # Python 3.11's wait_for (inside nats-py's requests) can swallow a cancellation that
        # lands as its reply arrives, and the loop would look again for ever: cancel until
        # it ends, a bounded number of times.
        for _ in range(STOP_TRIES):
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
            if done:
                break
        else:
            log.warning("time skipper did not stop after %d cancellations", STOP_TRIES)
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.debug("time skipper ended with %r", task.exception())

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except Exception as exc:  # noqa: BLE001 - NATS down (a fault test): look again soon
                log.debug("time skipper: %s; looking again", exc)
                await asyncio.sleep(POLL_MAX_S)

    async def _step(self) -> None:
        """Wait for a held timer and a quiet moment, then jump (or wait a little)."""
        if self.clock.held == 0:
            self.clock.held_changed.clear()
            await self.clock.held_changed.wait()
            return
        await self.wait_quiet(timeout_s=None)  # without the lock: env.sleep() may go first
        async with self.lock:
            try:  # quiet still, now that this one moves the clock?
                await self.wait_quiet(timeout_s=RECHECK_S)
            except TimeoutError:
                return
            due = self.clock.next_due()
            if due is None:
                return
            if not await outside_waits(self.js, self.clock.now()):
                log.debug("quiet: virtual clock jumps to %s", due.isoformat())
                await self.clock.advance_to(due)
                self.jumps += 1
                return
        # A run waits for the outside world, which the test is expected to answer.
        await asyncio.sleep(OUTSIDE_POLL_S)

    async def _look(self) -> tuple[int, ...] | None:
        """The streams' last sequences when nothing is in flight, else ``None``."""
        js = self.js
        # Tasks first: a worker publishes its result before it acks the task, so a task
        # seen gone here has its result counted below.
        tasks = await backlog(js, protocol.TASK_STREAM)
        history = await engine_backlog(js)
        timers = await backlog(js, protocol.TIMER_STREAM, protocol.TIMER_CONSUMER)
        events = await backlog(js, protocol.EVENT_STREAM, CORRELATOR_CONSUMER)
        busy = (
            tasks.messages > 0
            or history.pending > 0
            or history.unacked > 0
            or timers.pending > 0
            or timers.unacked > self.clock.held
            or events.pending > 0
            or events.unacked > 0
        )
        if busy:
            return None
        return (tasks.last_seq, history.last_seq, timers.last_seq, events.last_seq)

    async def wait_quiet(self, timeout_s: float | None) -> None:
        """Return once two looks ``QUIET_GAP_S`` apart find nothing in flight and nothing
        published in between; ``TimeoutError`` after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        pause = QUIET_GAP_S
        while True:
            first = await self._look()
            if first is not None:
                await asyncio.sleep(QUIET_GAP_S)
                if await self._look() == first:
                    return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the environment did not go quiet within {timeout_s}s: a task is queued "
                    "or running (is a worker serving it?), or the engine is not running"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_MAX_S)
