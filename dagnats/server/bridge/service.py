"""The worker bridge: workers in any language run tasks over HTTP (``/v1``).

A worker connects (its tasks), polls (long poll, bounded) and resolves each task: complete,
fail (with a failure type, retryable or not, retry-after), continue, and meanwhile
checkpoint, heartbeat, stream and signal. Results go out exactly as a Python worker's do:
the same result events and dedup ids (``protocol.events.step_result``), large values to
the object store (``Payloads.offload``), the event published before the task is acked; the
checkpoint, stream and signal calls are a :class:`~dagnats.worker.TaskContext`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pydantic import ValidationError

from dagnats import protocol
from dagnats._nats.consumers import ensure_consumer
from dagnats._nats.feed import PullFeed
from dagnats._nats.payloads import Payloads
from dagnats._nats.publish import append_event
from dagnats._nats.resources import MAX_MSG_BYTES
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import Msg, NatsClient
from dagnats.errors import ApiError, NotFoundError
from dagnats.protocol import events as ev
from dagnats.protocol import keys
from dagnats.server.bridge.models import ConnectRequest
from dagnats.server.bridge.sessions import HeldTask, Session
from dagnats.worker.backend import KvCache, NatsBackend
from dagnats.worker.consumers import ACK_WAIT_S, consumer_config
from dagnats.worker.context import TaskContext
from dagnats.worker.heartbeat import Heartbeater
from dagnats.worker.outcomes import failure_data, timeout_data

log = logging.getLogger(__name__)

MAX_SESSIONS = 1000
REAP_EVERY_S = 1.0
_HEADER_ROOM = 1024
_PUBLISH_TIMEOUT_S = 5.0


class TaskNotHeld(NotFoundError):
    """No task with this id is held: resolved already, or given back (lease lapsed)."""


class Bridge:
    """Sessions of HTTP workers; ``await start()`` before use, ``await stop()`` after."""

    def __init__(self, nc: NatsClient, *, ack_wait_s: float = ACK_WAIT_S) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.ack_wait_s = ack_wait_s
        self.payloads = Payloads(self.js)
        self._kv = KvCache(self.js)
        self._beats = Heartbeater(ack_wait_s / 3)
        self._sessions: dict[str, Session] = {}
        self._tasks: dict[str, tuple[Session, HeldTask]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._paused = False
        self._max_event_bytes = min(nc.max_payload or MAX_MSG_BYTES, MAX_MSG_BYTES) - _HEADER_ROOM

    async def start(self) -> None:
        self._beats.start()
        self._reaper = asyncio.create_task(self._reap(), name="dagnats-bridge-reaper")

    def pause(self) -> None:
        """Shutdown begins: long polls answer at once, new workers are refused (503)."""
        self._paused = True
        for session in self._sessions.values():
            session.closed.set()

    async def stop(self) -> None:
        self.pause()
        if self._reaper is not None:
            await stop_task(self._reaper)
            self._reaper = None
        for session in list(self._sessions.values()):
            await self._close(session)
        await self._beats.stop()

    # --- sessions ---

    async def connect(self, req: ConnectRequest) -> Session:
        if self._paused:
            raise ApiError("the bridge is shutting down; connect to another server", code=503)
        if len(self._sessions) >= MAX_SESSIONS:
            raise ApiError(f"the bridge holds {MAX_SESSIONS} workers already", code=503)
        pairs = list(dict.fromkeys((b.task, b.group) for b in req.tasks))
        session = Session.new(req.name, req.lease_s)
        self._sessions[session.worker_id] = session
        try:
            for task, group in pairs:
                config = consumer_config(task, group, self.ack_wait_s)
                await ensure_consumer(self.js, protocol.TASK_STREAM, config)
                feed = PullFeed(
                    self.nc,
                    protocol.TASK_STREAM,
                    protocol.task_consumer_name(task, group),
                    max_inflight=req.concurrency,
                )
                await feed.start()
                session.feeds.append(feed)
                session.dispatchers.append(
                    asyncio.create_task(self._dispatch(session, feed), name=f"bridge-{feed.name}")
                )
        except BaseException:
            await self._close(session)
            raise
        log.info("bridge: worker %s (%s) serves %s", session.name, session.worker_id, pairs)
        return session

    def session(self, worker_id: str) -> Session:
        session = self._sessions.get(worker_id)
        if session is None:
            raise NotFoundError(
                f"worker '{worker_id}' is not connected (never, or its lease lapsed): connect again"
            )
        session.touch()
        return session

    async def disconnect(self, worker_id: str) -> int:
        return await self._close(self.session(worker_id))

    async def _dispatch(self, session: Session, feed: PullFeed) -> None:
        while True:
            msg = await feed.get()
            self._beats.track(msg)  # alive from delivery on, polled or not
            session.ready.put_nowait((msg, feed))

    async def _close(self, session: Session) -> int:
        """Give back everything the session holds; the number of messages returned."""
        if self._sessions.pop(session.worker_id, None) is None:
            return 0
        session.closed.set()
        await session.stop_feeds()
        returned = 0
        pending = [(h.msg, h.feed) for h in session.held.values()] + session.drain_ready()
        for task_id in session.held:
            self._tasks.pop(task_id, None)
        session.held.clear()
        for msg, _feed in pending:
            self._beats.untrack(msg)
            with contextlib.suppress(Exception):  # the ack timer gives it back otherwise
                await msg.nak()
            returned += 1
        log.info("bridge: worker %s gone; %d tasks given back", session.worker_id, returned)
        return returned

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            now = time.monotonic()
            for session in list(self._sessions.values()):
                if session.expired(now):
                    log.warning("bridge: worker %s missed its lease", session.worker_id)
                    await self._close(session)
                    continue
                for held in list(session.held.values()):
                    if held.deadline is not None and now > held.deadline:
                        await self._time_out(held)

    async def _time_out(self, held: HeldTask) -> None:
        tm = held.message
        with contextlib.suppress(NotFoundError, ApiError):
            await self.resolve(
                held.task_id, ev.STEP_FAILED, timeout_data(tm.step_id, tm.timeout_ns or 0)
            )

    # --- tasks ---

    async def poll(self, session: Session, max_tasks: int, wait_s: float) -> list[HeldTask]:
        out: list[HeldTask] = []
        item = await session.next_ready(wait_s)
        while item is not None:
            held = await self._hand_out(session, *item)
            if held is not None:
                out.append(held)
            if len(out) >= max_tasks:
                break
            item = await session.next_ready(0)
        session.touch()
        return out

    async def _hand_out(self, session: Session, msg: Msg, feed: PullFeed) -> HeldTask | None:
        try:
            tm = protocol.TaskMessage.model_validate_json(msg.data)
        except ValidationError:
            log.warning("bridge: dropping a malformed task message on %s", msg.subject)
            await self._finish(msg, feed, ack=True)
            return None
        try:
            tm.input = await self.payloads.resolve(tm.input)
        except Exception as exc:  # noqa: BLE001 - object store unreachable or object expired
            data = failure_data(
                f"cannot fetch the input of step {tm.step_id!r} from the object store: {exc}",
                "PayloadError",
                retryable=True,
            )
            await self._publish_result(tm, ev.STEP_FAILED, data)
            await self._finish(msg, feed, ack=True)
            return None
        delivery = _delivery(msg)
        started, started_id = ev.step_started(
            tm, {"worker": session.worker_id, "worker_name": session.name, "delivery": delivery}
        )
        try:
            await append_event(self.js, started, started_id, timeout_s=_PUBLISH_TIMEOUT_S)
        except BaseException:
            await self._finish(msg, feed, ack=False)  # give it back; the poll fails (503)
            raise
        timeout_s = tm.timeout_ns / 1e9 if tm.timeout_ns and tm.timeout_ns > 0 else None
        held = HeldTask(
            task_id=session.next_task_id(),
            msg=msg,
            message=tm,
            feed=feed,
            ctx=TaskContext(tm, NatsBackend(self.nc, self._kv, self._beats, msg)),
            delivery=delivery,
            deadline=None if timeout_s is None else time.monotonic() + timeout_s,
        )
        session.held[held.task_id] = held
        self._tasks[held.task_id] = (session, held)
        return held

    def held(self, task_id: str) -> HeldTask:
        return self._lookup(task_id)[1]

    def _lookup(self, task_id: str) -> tuple[Session, HeldTask]:
        found = self._tasks.get(task_id)
        if found is None:
            raise TaskNotHeld(
                f"task '{task_id}' is not held: resolved already, or given back when its "
                "worker's lease lapsed"
            )
        found[0].touch()
        return found

    async def resolve(self, task_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Publish the task's result event, then ack it (the Python worker's order)."""
        session, held = self._lookup(task_id)
        self._tasks.pop(task_id, None)  # one resolve at a time wins
        try:
            if held.ctx.checkpointed:
                data = {**data, "checkpointed": True}  # the run's end purges them only if so
            await self._publish_result(held.message, event_type, data)
        except BaseException:
            self._tasks[task_id] = (session, held)  # not resolved: the worker may retry
            raise
        session.held.pop(task_id, None)
        await self._finish(held.msg, held.feed, ack=True)

    async def _publish_result(
        self, tm: protocol.TaskMessage, event_type: str, data: dict[str, Any]
    ) -> None:
        data = await self._offload(tm, event_type, data)
        event, result_id = ev.step_result(tm, event_type, data)
        if len(event.to_bytes()) > self._max_event_bytes:
            message = f"result of step {tm.step_id!r} is over one NATS message"
            event, result_id = ev.step_failed(
                tm, failure_data(message, "OutputTooLargeError", retryable=False)
            )
        await append_event(self.js, event, result_id, timeout_s=_PUBLISH_TIMEOUT_S)

    async def _offload(
        self, tm: protocol.TaskMessage, event_type: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        field = {ev.STEP_COMPLETED: "output", ev.STEP_CONTINUE: "value"}.get(event_type)
        if field is None:
            return data
        key = keys.payload_key(tm.run_id, tm.step_id, tm.attempt, tm.iteration, tm.item, field)
        return {**data, field: await self.payloads.offload(key, data[field])}

    async def _finish(self, msg: Msg, feed: PullFeed, *, ack: bool) -> None:
        self._beats.untrack(msg)
        if ack:  # with the feed's next pull request when one is due (+NXT)
            with contextlib.suppress(Exception):  # a closed connection: the ack timer covers it
                await feed.ack_done(msg)  # frees the room even when it raises
            return
        with contextlib.suppress(Exception):
            await msg.nak()
        await feed.done()


def _delivery(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # noqa: BLE001 - not a JetStream message (cannot happen on a feed)
        return 1
