"""Execute the actions ``advance()`` returns, with NATS primitives.

Every publish carries the action's deterministic dedup id, so executing the same actions
twice (an engine crash after publishing and before the ack) leaves no visible trace.
All publishes of one event are pipelined and awaited together before the snapshot write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.kvscan import purge_key
from dagnats._nats.payloads import THRESHOLD_BYTES, Payloads
from dagnats._nats.publish import (
    ACK_TIMEOUT_S,
    append_event,
    gather_acks,
    msg_id,
    publish_atomic,
    stall_timeout,
)
from dagnats._nats.stores import DefinitionStore
from dagnats._nats.types import JetStreamContext, KeyValue, NatsClient, PubAck
from dagnats.dag.definition.agents import agent_group
from dagnats.dag.machine.actions import (
    Action,
    AdmitRun,
    CancelChildRun,
    DeadLetter,
    DispatchTask,
    FinishRun,
    RecordEvent,
    RegisterWaiter,
    RemoveWaiter,
    RequestApproval,
    Respond,
    ScheduleTimer,
    StartChildRun,
)
from dagnats.engine.limits import check_limits, is_limited, limits_of
from dagnats.engine.run_actions import RunActions
from dagnats.protocol import clock, dedup, keys, wire
from dagnats.protocol import events as ev
from dagnats.protocol.messages import DeadLetterMessage, DeferredTask, EventWaiter, TimerMessage
from dagnats.telemetry import tracing

log = logging.getLogger(__name__)


def timer_body(a: ScheduleTimer) -> bytes:
    return TimerMessage(
        run_id=a.run_id,
        step_id=a.step_id,
        kind=a.kind,
        fire_at=a.fire_at,
        data={**a.data, "kind": a.kind},
        dedup_id=a.dedup_id,
    ).encode()


class Executor:
    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        defs: DefinitionStore,
        kv: dict[str, KeyValue],
    ) -> None:
        self.nc = nc
        self.js = js
        self.defs = defs
        self.kv = kv
        # Set by the engine: the correlator's look-back for a newly registered waiter.
        self.on_waiter: Callable[[RegisterWaiter], Awaitable[None]] | None = None
        self.payloads = Payloads(js)
        # The actions about a run as a whole (admission, its end, children, approvals).
        self.run_actions = RunActions(nc, js, defs, kv)
        # How long a publish ack is awaited before the actions fail and are applied again
        # (same message ids): a lost ack must not hold the run's actor for ever.
        self.ack_timeout_s = ACK_TIMEOUT_S
        # Set by the engine: metadata.role -> worker group of agent steps (dag.definition.agents).
        self.agent_routes: dict[str, str] = {}

    async def execute(
        self, actions: list[Action], *, records_later: bool = False
    ) -> Callable[[], Awaitable[None]] | None:
        """Run ``actions``. With ``records_later`` the acks of history records are not
        awaited here: the returned coroutine function confirms them (re-publishing under
        the same dedup ids if an ack failed), so the caller can overlap them with its
        snapshot write."""
        futures: list[asyncio.Future[PubAck]] = []
        record_futures: list[asyncio.Future[PubAck]] = []
        records: list[RecordEvent] = []
        later: list[Action] = []
        fanout: dict[tuple[str, str], list[DispatchTask]] = defaultdict(list)
        for a in actions:
            if isinstance(a, DispatchTask):
                fanout[(a.run_id, a.step_id)].append(a)
            elif isinstance(a, RecordEvent):
                records.append(a)
                (record_futures if records_later else futures).append(
                    await self._pub(
                        protocol.history_subject(a.event.run_id),
                        await self._record_body(a),
                        a.dedup_id,
                    )
                )
            elif isinstance(a, ScheduleTimer):
                futures.append(
                    await self._pub(
                        protocol.timer_subject(a.kind, a.run_id), timer_body(a), a.dedup_id
                    )
                )
            elif isinstance(a, DeadLetter):
                futures.append(
                    await self._pub(
                        protocol.dead_letter_subject(a.run_id, a.step_id),
                        _dead_letter_body(a),
                        dedup.dead_letter_id(a.run_id, a.step_id, a.item, a.attempts),
                    )
                )
            else:
                later.append(a)
        await self._dispatch(fanout, futures)
        await gather_acks(futures, timeout_s=self.ack_timeout_s)
        for a in later:
            await self._other(a)
        if not record_futures:
            return None

        async def confirm() -> None:
            try:
                await gather_acks(record_futures, timeout_s=self.ack_timeout_s)
            except Exception as exc:  # noqa: BLE001 - unconfirmed: publish again (dedup ids)
                log.warning("history records not acknowledged (%s); publishing again", exc)
                for r in records:
                    await append_event(self.js, r.event, r.dedup_id)

        return confirm

    async def _dispatch(
        self,
        fanout: dict[tuple[str, str], list[DispatchTask]],
        futures: list[asyncio.Future[PubAck]],
    ) -> None:
        """Publish the task messages of each step: limited ones one by one, a map's at once."""
        for (_run, _step), tasks in fanout.items():
            limited = [t for t in tasks if is_limited(t)]
            if limited:
                # Limits are per task type: each instance asks for its own token / slot.
                for t in limited:
                    with step_span(t):
                        await self.dispatch_limited(t, futures)
                tasks = [t for t in tasks if not is_limited(t)]
            if not tasks:
                continue
            if len(tasks) == 1:
                t = tasks[0]
                subject, dedup_id = await self._route(t)
                with step_span(t):
                    futures.append(await self._pub(subject, await self._task_body(t), dedup_id))
            else:
                # Map fan-out: all instances or none (atomic batches of <= 1000).
                # One binding read for the whole fan-out (the instances share a run).
                first = await self._route(tasks[0])
                if all(t.fallback == tasks[0].fallback for t in tasks):
                    routes = [self._reroute(t, tasks[0], first) for t in tasks]
                else:
                    routes = [await self._route(t) for t in tasks]
                with step_span(tasks[0]):
                    msgs = [
                        (subject, await self._task_body(t), msg_id(dedup_id))
                        for t, (subject, dedup_id) in zip(tasks, routes, strict=True)
                    ]
                    await publish_atomic(self.nc, self.js, msgs)

    async def dispatch_limited(
        self, t: DispatchTask, futures: list[asyncio.Future[PubAck]]
    ) -> None:
        """Publish now if a token and a slot are free, else defer through the timer stream."""
        wait_s = await check_limits(self.kv, limits_of(t))
        subject, dedup_id = await self._route(t)
        if wait_s is None:
            futures.append(await self._pub(subject, await self._task_body(t), dedup_id))
            return
        deferred = TimerMessage(
            run_id=t.run_id,
            step_id=t.step_id,
            kind="dispatch",
            fire_at=clock.now() + timedelta(seconds=wait_s),
            data={"kind": "dispatch"},
            dedup_id=dedup.deferred_task_id(t.dedup_id),
            task=DeferredTask(
                subject=subject, body=(await self._task_body(t)).decode(), **limits_of(t)
            ),
        )
        futures.append(
            await self._pub(
                protocol.timer_subject("dispatch", t.run_id), deferred.encode(), deferred.dedup_id
            )
        )

    async def _route(self, t: DispatchTask) -> tuple[str, str]:
        """Subject and dedup id of a task: a sticky run's go to the worker bound to the run
        (``task.<task>.@<worker>``) once one is; before that, and for a soft run's fallback
        copy, to every worker serving the task (the worker that takes one binds the run)."""
        group = t.worker_group
        if t.agent:
            group = agent_group(t.metadata, group, self.agent_routes)
        general = protocol.task_subject(t.task, group)
        if not t.sticky or t.fallback:
            return general, t.dedup_id
        bound, _rev = await cas.read(self.kv[protocol.KV_STICKY], t.run_id)
        if bound is None:
            return general, t.dedup_id
        worker = bound.decode()
        subject = protocol.task_subject(t.task, protocol.sticky_group(worker))
        return subject, dedup.sticky_task_id(t.dedup_id, worker)

    @staticmethod
    def _reroute(t: DispatchTask, like: DispatchTask, route: tuple[str, str]) -> tuple[str, str]:
        """The route of ``t`` given that of ``like``, a task of the same step and run."""
        if t is like:
            return route
        if route[1] == like.dedup_id:  # not bound: the shared subject
            return route[0], t.dedup_id
        worker = route[0].rsplit(".@", 1)[-1]
        return route[0], dedup.sticky_task_id(t.dedup_id, worker)

    async def _task_body(self, t: DispatchTask) -> bytes:
        """The task message; an input the engine assembled (a map's fan-in, several
        dependencies' outputs) that is too large for one message goes by reference."""
        body = _task_body_inline(t)
        if len(body) <= THRESHOLD_BYTES:
            return body
        key = keys.payload_key(t.run_id, t.step_id, t.attempt, t.iteration, t.item, "input")
        ref = await self.payloads.offload(key, t.input)
        return _task_body_inline(dataclasses.replace(t, input=ref))

    async def _record_body(self, a: RecordEvent) -> bytes:
        body = a.event.to_bytes()
        if len(body) <= THRESHOLD_BYTES:
            return body
        key = keys.record_payload_key(a.event.run_id, a.dedup_id)
        ref = await self.payloads.offload(key, a.event.data)
        return a.event.model_copy(update={"data": ref}).to_bytes()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for background clean-ups (bounded)."""
        await self.run_actions.drain(timeout_s)

    async def _pub(self, subject: str, data: bytes, dedup_id: str) -> asyncio.Future[PubAck]:
        # Bounded wait for a pending-publish slot too (they are freed by gather_acks' deadline).
        return await self.js.publish_async(
            subject,
            data,
            headers=msg_id(dedup_id),
            wait_stall=stall_timeout(self.js, self.ack_timeout_s),
        )

    async def _other(self, a: Action) -> None:
        runs = self.run_actions
        if isinstance(a, FinishRun):
            await runs.finish(a)
        elif isinstance(a, AdmitRun):
            await runs.admit(a)
        elif isinstance(a, StartChildRun):
            await runs.start_child(a)
        elif isinstance(a, CancelChildRun):
            await append_event(self.js, *ev.cancel_requested(a.child_run_id, a.reason, by="parent"))
        elif isinstance(a, RequestApproval):
            await runs.request_approval(a)
        elif isinstance(a, RegisterWaiter):
            waiter = EventWaiter(
                run_id=a.run_id,
                step_id=a.step_id,
                event=a.event,
                match=a.match,
                lookback_ns=a.lookback_ns,
                registered_at=a.registered_at,
                as_text=a.as_text,
            )
            await self.kv[protocol.KV_WAITERS].put(
                keys.waiter_key(a.event, a.run_id, a.step_id), waiter.encode()
            )
            if self.on_waiter is not None:
                await self.on_waiter(a)
        elif isinstance(a, RemoveWaiter):
            await purge_key(
                self.kv[protocol.KV_WAITERS], keys.waiter_key(a.event, a.run_id, a.step_id)
            )
        elif isinstance(a, Respond):
            answer = {
                "status": a.status,
                "headers": a.headers,
                "content_type": a.content_type,
                "data": a.data,
            }
            body = json.dumps(answer, default=str).encode()
            await self.nc.publish(protocol.respond_subject(a.run_id), body)


def step_span(t: DispatchTask) -> AbstractContextManager[Any]:
    """The engine's span of one step attempt: the task message carries it to the worker."""
    return tracing.span(
        f"dagnats.step {t.step_id}",
        {
            tracing.WORKFLOW: t.workflow,
            tracing.RUN_ID: t.run_id,
            tracing.STEP_ID: t.step_id,
            tracing.ATTEMPT: t.attempt,
            tracing.TASK: t.task,
        },
        kind="producer",
    )


def _task_body_inline(t: DispatchTask) -> bytes:
    fields = _task_fields(t)
    body = wire.task_body(fields)
    if body is not None:
        return body  # the JSON TaskMessage would write, without building one
    return protocol.TaskMessage(**fields).encode()


def _task_fields(t: DispatchTask) -> dict[str, Any]:
    return dict(
        run_id=t.run_id,
        workflow=t.workflow,
        step_id=t.step_id,
        task=t.task,
        attempt=t.attempt,
        iteration=t.iteration,
        item=t.item,
        input=t.input,
        timeout_ns=t.timeout_ns,
        idempotency_key=t.idempotency_key,
        dedup_id=t.dedup_id,
        metadata=t.metadata,
        capabilities=list(t.capabilities) or None,
        budget_warning=t.budget_warning or None,
        budget_final=t.budget_final or None,
        run_retry=t.run_retry or None,
        sticky=t.sticky or None,
        fallback=t.fallback or None,
        control_root=t.control_root,
    )


def _dead_letter_body(a: DeadLetter) -> bytes:
    return DeadLetterMessage(
        run_id=a.run_id,
        step_id=a.step_id,
        item=a.item,
        task=a.task,
        input=a.input,
        error=a.error,
        attempts=a.attempts,
        ts=clock.now(),
    ).encode()
