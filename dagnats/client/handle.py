"""``RunHandle``: wait for a run's result, follow its events, read its streamed output."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.history import has_history, read_history
from dagnats._nats.payloads import Payloads
from dagnats._nats.stores import read_snapshot
from dagnats._nats.types import (
    DeliverPolicy,
    Msg,
    Subscription,
)
from dagnats.dag.machine.state import STEP_TERMINAL, RunState, RunStatus
from dagnats.errors import RunCancelledError, RunFailedError, RunNotFoundError
from dagnats.protocol import events as ev
from dagnats.protocol.control import ScheduledRun
from dagnats.protocol.ended import RunEnded, parse_ended
from dagnats.protocol.events import Event

if TYPE_CHECKING:
    from dagnats.client.client import Client

# ``result()`` waits for the engine's terminal announcement, a core NATS message: one sent
# while the client was reconnecting is lost. So a long wait wakes this often to read the
# snapshot again.
RESULT_RECHECK_S = 30.0
# ``stream()`` may be opened before the run is started (to see the first chunk); a run that
# has not started this long after is reported as not found.
STREAM_START_GRACE_S = 10.0
# Early subscriptions one client keeps for runs it started and has not waited for yet.
MAX_EARLY = 4096


def outcome(state: RunState) -> Any:
    """The run's result, or the exception its terminal status stands for."""
    return outcome_of(ended_of(state))


def ended_of(state: RunState) -> RunEnded:
    """What the terminal announcement says of ``state``."""
    error = state.error.model_dump() if state.error is not None else None
    return RunEnded(
        run_id=state.run_id,
        status=state.status,
        output=state.output,
        error=error,
        failed_step=state.failed_step,
    )


def outcome_of(ended: RunEnded) -> Any:
    """The run's result, or the exception its terminal status stands for."""
    run_id, status = ended.run_id, ended.status
    if status == "completed":
        return ended.output
    if status == "cancelled":
        raise RunCancelledError(f"run {run_id} was cancelled", run_id=run_id, status=status)
    err = ended.error or {}
    step = err.get("step_id") or ended.failed_step
    message = err.get("message") or status
    where = f" at step '{step}'" if step else ""
    raise RunFailedError(
        f"run {run_id} {status}{where}: {message}",
        run_id=run_id,
        status=status,
        step_id=step,
        error=message,
    )


class Announcements:
    """Subscriptions to terminal announcements opened before their runs start.

    ``Client.start`` opens one before the start request (the subscription reaches the
    server first), so ``result()`` needs no snapshot read: the end cannot slip between the
    start and the wait. Bounded: past ``MAX_EARLY`` the oldest is closed, and its handle
    waits the usual way (subscribe, then read the snapshot once).
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._subs: OrderedDict[str, Subscription] = OrderedDict()

    async def open(self, run_id: str) -> None:
        self._subs[run_id] = await self.client.nc.subscribe(protocol.done_subject(run_id))
        while len(self._subs) > MAX_EARLY:
            _, oldest = self._subs.popitem(last=False)
            await _unsubscribe(oldest)

    def take(self, run_id: str) -> Subscription | None:
        """The run's early subscription, now the caller's to close (``None``: none)."""
        return self._subs.pop(run_id, None)

    async def drop(self, run_id: str) -> None:
        sub = self.take(run_id)
        if sub is not None:
            await _unsubscribe(sub)


async def _unsubscribe(sub: Subscription) -> None:
    with contextlib.suppress(Exception):  # a closed connection has no subscription left
        await sub.unsubscribe()


class RunHandle:
    def __init__(
        self,
        client: Client,
        run_id: str,
        *,
        workflow: str | None = None,
        duplicate: bool = False,
        known: bool = False,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.workflow = workflow
        self.duplicate = duplicate  # True when an idempotency key matched an earlier run
        self._known = known  # the run was just started through this client
        self.run_at: str | None = None
        """For a run started with ``run_at`` ahead: when it starts (RFC 3339)."""

    async def _check_exists(self) -> None:
        """RunNotFoundError unless the run has a history (a direct get; no engine work)."""
        if not await has_history(self.client.js, self.run_id):
            raise RunNotFoundError(f"run '{self.run_id}' not found")

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r}, workflow={self.workflow!r})"

    async def status(self) -> RunState:
        return await self.client.get_run(self.run_id)

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end; its output, or RunFailedError / RunCancelledError.

        A run started by this client was subscribed to before its start: the engine's
        announcement carries the result, so nothing is read. Otherwise this subscribes to
        the announcement first, then reads the snapshot once: the engine announces again
        once the terminal snapshot is stored, so either the read finds it or an
        announcement arrives: no gap between the two. The announcement is a core message,
        lost if it comes while the connection is down, so a wait also wakes every
        ``RESULT_RECHECK_S`` seconds (and only then) to read the snapshot again.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        late = f"run {self.run_id} did not finish within {timeout}s"
        sub = self.client.announcements.take(self.run_id)
        subscribed_early = sub is not None
        if sub is None:
            sub = await self.client.nc.subscribe(protocol.done_subject(self.run_id))
        try:
            ended = None
            if not subscribed_early:
                ended = await self._ended(check_exists=not self._known)
            while ended is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(late)
                wait = RESULT_RECHECK_S if left is None else min(left, RESULT_RECHECK_S)
                try:
                    msg = await sub.next_msg(timeout=wait)
                except TimeoutError:
                    ended = await self._ended(check_exists=False)
                    continue
                ended = parse_ended(msg.data, self.run_id)
                if ended.snapshot:  # the result is in the stored snapshot
                    ended = await self._ended(check_exists=False)
            return await self._resolve(outcome_of(ended))
        finally:
            await _unsubscribe(sub)

    async def _ended(self, *, check_exists: bool) -> RunEnded | None:
        """The end of the run as its stored snapshot tells (``None``: not ended yet)."""
        state = await self._snapshot(self.client.payloads, check_exists=check_exists)
        return ended_of(state) if state is not None and state.terminal else None

    async def _snapshot(self, payloads: Payloads, *, check_exists: bool) -> RunState | None:
        """The stored snapshot, if any (with ``check_exists``, RunNotFoundError when the run
        has neither a snapshot nor a history)."""
        stored = await read_snapshot(await self.client.kv(protocol.KV_RUNS), payloads, self.run_id)
        if stored.state is None and not stored.exists:
            scheduled = await self._scheduled()
            if scheduled is not None:  # it has not started (or was cancelled before)
                return scheduled if scheduled.status == "cancelled" else None
            if check_exists:
                await self._check_exists()
        return stored.state

    async def _scheduled(self) -> RunState | None:
        """A run waiting for its ``run_at`` (``scheduled``), or cancelled before it started."""
        raw, _ = await cas.read(await self.client.kv(protocol.KV_SCHEDULED), self.run_id)
        if raw is None:
            return None
        record = ScheduledRun.model_validate_json(raw)
        if record.state not in ("scheduled", "cancelled"):
            return None
        status: RunStatus = "cancelled" if record.state == "cancelled" else "scheduled"
        return RunState(run_id=self.run_id, workflow=record.workflow, status=status)

    async def _resolve(self, value: Any) -> Any:
        # The result may be a reference, or hold some ({sink: output}, a map's list).
        return await self.client.payloads.resolve(value)

    async def events(
        self, *, follow: bool = False, timeout: float | None = None
    ) -> AsyncIterator[Event]:
        """The run's events in order; with ``follow``, keep going until the run ends."""
        if not follow:
            for e in await read_history(self.client.nc, self.run_id):
                yield e
            return
        if not self._known:
            await self._check_exists()  # else an unknown run would be followed forever
        js = self.client.js
        sub = await js.subscribe(
            protocol.history_filter(self.run_id),
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                msg = await _next(
                    sub, deadline, f"run {self.run_id} did not finish within {timeout}s"
                )
                e = Event.from_bytes(msg.data, msg.metadata.sequence.stream)
                yield e
                if e.type in ev.TERMINAL_RUN_EVENTS:
                    return
        finally:
            await sub.unsubscribe()

    async def stream(self, step_id: str, *, timeout: float | None = None) -> AsyncIterator[Any]:
        """Chunks a step sends with ``ctx.put_stream``, in order, until the step ends.

        A step (or run) that already ended yields the chunks still in flight, if any, and
        stops. A run that does not exist yet may still be started (reading first is how the
        first chunk is seen): RunNotFoundError when it has not started within
        ``STREAM_START_GRACE_S``.
        """
        nc = self.client.nc
        chunks = await nc.subscribe(protocol.stream_subject(self.run_id, step_id))
        done = asyncio.Event()
        started = asyncio.Event()

        async def on_history(msg: Any) -> None:
            started.set()
            try:
                e = Event.from_bytes(msg.data)
            except ValueError:
                return
            if e.type in ev.TERMINAL_RUN_EVENTS or (e.step_id == step_id and _step_ended(e)):
                done.set()

        history = await nc.subscribe(protocol.history_subject(self.run_id), cb=on_history)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # Subscribed first, then read once: an end before the subscriptions is seen here,
            # an end after them arrives on the history subscription.
            unknown_since: float | None = None
            try:
                state = await self.client.get_run(self.run_id)
            except RunNotFoundError:
                unknown_since = time.monotonic()
            else:
                step = state.steps.get(step_id)
                if state.terminal or (step is not None and step.status in STEP_TERMINAL):
                    done.set()
            while True:
                if (
                    unknown_since is not None
                    and not started.is_set()
                    and time.monotonic() - unknown_since >= STREAM_START_GRACE_S
                ):
                    await self._check_exists()  # RunNotFoundError unless it started
                    unknown_since = None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"step {step_id} did not finish within {timeout}s")
                wait = 0.25 if done.is_set() else (min(left, 1.0) if left is not None else 1.0)
                try:
                    msg = await chunks.next_msg(timeout=wait)
                except TimeoutError:
                    if done.is_set():
                        return  # the step ended and its last chunks have been read
                    continue
                body = json.loads(msg.data)
                yield body.get("data") if isinstance(body, dict) else body
        finally:
            await chunks.unsubscribe()
            await history.unsubscribe()

    async def signal(self, name: str, data: Any = None) -> None:
        await self.client.send_signal(self.run_id, name, data)

    async def cancel(self, reason: str | None = None) -> bool:
        return await self.client.cancel(self.run_id, reason)


def _step_ended(e: Event) -> bool:
    """The step is over for good (a failed attempt that will be retried is not)."""
    if e.type == ev.STEP_COMPLETED:
        return e.item is None  # one finished map instance does not end the map step
    return e.type in (ev.STEP_MAP_COMPLETED, ev.STEP_RECOVERED, ev.STEP_SKIPPED)


async def _next(sub: Subscription, deadline: float | None, late: str) -> Msg:
    """The next message, or ``TimeoutError(late)`` once ``deadline`` (monotonic) passes."""
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError(late)
        try:
            # Without a deadline, wake up hourly only to wait again (nats-py needs a number).
            return await sub.next_msg(timeout=left if left is not None else 3600)
        except TimeoutError:
            continue
