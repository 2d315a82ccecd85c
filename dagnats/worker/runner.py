"""Handle one task message: started event, input validation, the handler under its
deadline, the result event (acked by JetStream) and only then the message ack.

Publishing the result before acking means a crash in between repeats the handler, never
loses the result; the result's ``Nats-Msg-Id`` (``<dedup_id>.result``) makes the repeat
invisible to the engine inside the stream's dedup window. Inputs and outputs above 256 KiB
travel by reference to the ``payloads`` object store (``dagnats/_nats/payloads.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable
from typing import Any, Literal

import anyio
import anyio.to_thread
from pydantic import ValidationError

from dagnats import protocol
from dagnats._nats.logs import append_step_log
from dagnats._nats.payloads import Payloads
from dagnats._nats.publish import msg_id
from dagnats._nats.resources import MAX_MSG_BYTES
from dagnats._nats.types import JetStreamContext, Msg, NatsClient, PubAck, Subscription
from dagnats.dag.definition.flow import CONTROL_PLANE
from dagnats.protocol import dedup, keys
from dagnats.protocol import events as ev
from dagnats.protocol.durations import format_duration
from dagnats.telemetry import metrics, tracing
from dagnats.worker.backend import KvCache, NatsBackend
from dagnats.worker.context import TaskContext
from dagnats.worker.control import ControlPlane
from dagnats.worker.heartbeat import Heartbeater
from dagnats.worker.outcomes import (
    Continue,
    OutputError,
    completed_data,
    continue_data,
    exception_data,
    failure_data,
    timeout_data,
    to_json_value,
    validation_message,
)
from dagnats.worker.sticky import bound_worker, needs_binding
from dagnats.worker.task import Task

log = logging.getLogger(__name__)

Outcome = Literal[
    "completed", "failed", "continued", "poison", "returned", "unreported", "abandoned", "forwarded"
]
MAX_ENDED_RUNS = 10_000  # remembered so a task of an ended run arriving later is dropped

MAX_ERROR_CHARS = 8192  # an error message is a summary; the traceback tail is bounded too
_HEADER_ROOM = 1024  # subject, headers and envelope around the data
_STARTED_SETTLE_S = 5.0
_RESULT_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0)  # ~10 s: past a raft election
_UNREPORTED_NAK_DELAY_S = 5.0

_OUTCOME_BY_TYPE: dict[str, Outcome] = {
    ev.STEP_COMPLETED: "completed",
    ev.STEP_FAILED: "failed",
    ev.STEP_CONTINUE: "continued",
}


class _StepTimeout(Exception):
    pass


class DeliveryFaults:
    """Faults a test arms on a worker's next deliveries of a task (``env.faults``).

    Each armed fault hits exactly one delivery, the next one of that task name:
    ``expire`` gives the message back as soon as it arrives, while its handler runs on (as
    when its ack wait runs out mid-handler); ``lose`` runs the handler and then drops the
    result and the ack, giving the message back (as when the worker dies right after).
    """

    def __init__(self) -> None:
        self.expire: list[str] = []
        self.lose: list[str] = []

    @staticmethod
    def take(armed: list[str], task: str) -> bool:
        if task in armed:
            armed.remove(task)
            return True
        return False


def _ended_retry(body: bytes) -> int:
    """The retry of a run that an end notice (``"<status>[ <retry>]"``) is about."""
    parts = body.split()
    try:
        return int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return 0


class _RunEnded(Exception):
    """The run ended (cancelled, failed, compensated) while this handler ran."""


class _Lost(_RunEnded):
    """A lost-worker fault: the result is dropped and the message given back, unacked."""


class Runner:
    """Everything one message needs; shared by all tasks of a worker."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        worker_id: str,
        worker_name: str,
        beats: Heartbeater,
        kv: KvCache,
        limiter: anyio.CapacityLimiter,
        report_started_after_s: float = 0.05,
        faults: DeliveryFaults | None = None,
    ) -> None:
        self._nc = nc
        self._faults = faults or DeliveryFaults()
        self._started_after_s = report_started_after_s
        self._js: JetStreamContext = nc.jetstream()
        self._worker_id = worker_id
        self._worker_name = worker_name
        self._beats = beats
        self._kv = kv
        self._limiter = limiter
        # Inputs above the threshold arrive as object-store references; outputs above it
        # leave the same way (see dagnats/_nats/payloads.py).
        self._payloads = Payloads(self._js)
        self._max_event_bytes = min(nc.max_payload or MAX_MSG_BYTES, MAX_MSG_BYTES) - _HEADER_ROOM
        # Handlers in flight per run, so the end of a run can stop its wasted work.
        self._handlers: dict[str, set[asyncio.Task[Any]]] = {}
        # run id -> the retry of it that ended (insertion-ordered, bounded)
        self._ended: dict[str, int] = {}
        self._cancel_sub: Subscription | None = None

    async def listen(self) -> None:
        """Follow run endings announced by the engine (core subject, best effort)."""
        self._cancel_sub = await self._nc.subscribe(
            protocol.cancel_subject("*"), cb=self._on_run_ended
        )

    async def close(self) -> None:
        if self._cancel_sub is not None:
            await _quietly(self._cancel_sub.unsubscribe(), "unsubscribe")
            self._cancel_sub = None

    async def _on_run_ended(self, msg: Msg) -> None:
        run_id = msg.subject.rsplit(".", 1)[-1]
        self._ended[run_id] = _ended_retry(msg.data)
        while len(self._ended) > MAX_ENDED_RUNS:
            self._ended.pop(next(iter(self._ended)))
        for job in self._handlers.get(run_id, ()):
            job.cancel()

    async def handle(self, msg: Msg, task: Task[..., Any]) -> Outcome:
        """Process ``msg`` to the end (acked or given back); never raises but cancellation.

        The handler runs in a span continuing the engine's span of this step attempt (the
        message's ``traceparent``); the handler's own spans nest inside it.
        """
        tm = await _parse(msg)
        if tm is None:
            return "poison"
        if needs_binding(tm, msg.subject):
            forwarded = await self._forward(msg, tm)
            if forwarded is not None:
                return forwarded
        attributes = {
            tracing.WORKFLOW: tm.workflow,
            tracing.RUN_ID: tm.run_id,
            tracing.STEP_ID: tm.step_id,
            tracing.ATTEMPT: tm.attempt,
            tracing.TASK: tm.task,
        }
        with tracing.span(
            f"dagnats.task {tm.task}", attributes, parent=msg.headers, kind="consumer"
        ) as current:
            outcome = await self._handle(msg, task, tm)
            if outcome == "failed":
                tracing.mark_failed(current, "the step attempt failed")
            return outcome

    async def _handle(self, msg: Msg, task: Task[..., Any], tm: protocol.TaskMessage) -> Outcome:
        reported = False
        # step.started is reported only for handlers still running after a short while:
        # a quick task then costs the engine one event instead of two, and "running" is
        # still visible for anything a person could watch.
        started_job: asyncio.Task[asyncio.Future[PubAck] | None] | None = None

        def report_started() -> None:
            nonlocal started_job
            started_job = asyncio.ensure_future(self._publish_started(tm, _delivery(msg)))

        loop = asyncio.get_running_loop()
        timer = (
            loop.call_later(self._started_after_s, report_started)
            if self._started_after_s > 0
            else None
        )
        if timer is None:
            report_started()
        try:
            event_type, data = await self._execute(msg, task, tm)
            event_type, body, result_id = self._result_body(tm, event_type, data)
            if timer is not None:
                timer.cancel()
            await _settle_started(started_job, tm)  # keep started before the result in the log
            reported = await self._publish_result(tm, body, result_id)
            if not reported:
                await _quietly(msg.nak(delay=_UNREPORTED_NAK_DELAY_S), "nak")
                return "unreported"
            await _quietly(msg.ack(), "ack")
            return _OUTCOME_BY_TYPE[event_type]
        except _RunEnded as ended:
            if timer is not None:
                timer.cancel()
            return await self._drop(msg, tm, ended, started_job)
        except asyncio.CancelledError:
            # Shutdown gave up waiting: hand the message back for another worker. If the
            # result was already published, the redelivery's result is a dedup no-op.
            if timer is not None:
                timer.cancel()
            if not reported:
                await _quietly(msg.nak(), "nak on shutdown")
            if started_job is not None:
                started_job.cancel()
            raise

    async def _forward(self, msg: Msg, tm: protocol.TaskMessage) -> Outcome | None:
        """A sticky run's task: ``None`` when it runs here (this worker is, or now becomes,
        the run's), else it is sent on to the bound worker's own subject."""
        try:
            kv = await self._kv.get(protocol.KV_STICKY)
            owner = await bound_worker(kv, tm.run_id, self._worker_id)
            if owner == self._worker_id:
                return None
            subject = protocol.task_subject(tm.task, protocol.sticky_group(owner))
            await self._js.publish(
                subject, msg.data, headers=msg_id(dedup.sticky_task_id(tm.dedup_id, owner))
            )
        except Exception as exc:  # noqa: BLE001 - NATS trouble: give the task back, try later
            log.warning("could not route sticky task %s: %s", tm.dedup_id, exc)
            await _quietly(msg.nak(delay=1.0), "nak")
            return "returned"
        await _quietly(msg.ack(), "ack of a forwarded task")
        return "forwarded"

    async def _fault_before(self, msg: Msg, tm: protocol.TaskMessage) -> None:
        if self._faults.take(self._faults.expire, tm.task):
            log.warning("fault: the ack wait of %s/%s expires now", tm.run_id, tm.step_id)
            await _quietly(msg.nak(), "nak of an expired-ack fault")

    async def _drop(
        self,
        msg: Msg,
        tm: protocol.TaskMessage,
        why: _RunEnded,
        started_job: asyncio.Task[asyncio.Future[PubAck] | None] | None,
    ) -> Outcome:
        if isinstance(why, _Lost):
            await _settle_started(started_job, tm)
            log.warning("fault: the worker of %s/%s is lost", tm.run_id, tm.step_id)
            await _quietly(msg.nak(), "nak of a lost-worker fault")
            return "unreported"
        # Nobody needs this result any more: drop the task instead of redelivering it.
        log.info("run %s ended; stopped step %s", tm.run_id, tm.step_id)
        await _quietly(msg.ack(), "ack of an ended run's task")
        return "abandoned"

    async def _execute(
        self, msg: Msg, task: Task[..., Any], tm: protocol.TaskMessage
    ) -> tuple[str, dict[str, Any]]:
        """Run the handler on the resolved input; the result event's type and data."""
        await self._fault_before(msg, tm)
        failure = await self._resolve_input(tm)
        if failure is not None:
            return failure
        control = None
        if CONTROL_PLANE in (tm.capabilities or ()):
            kv = await self._kv.get(protocol.KV_CONCURRENCY)
            control = ControlPlane(self._nc, kv, tm, tm.control_root or tm.run_id)
        ctx = TaskContext(tm, NatsBackend(self._nc, self._kv, self._beats, msg), control=control)
        try:
            result = await self._run(task, tm, ctx)
        except _RunEnded:
            await self._save_logs(ctx)
            raise
        if ctx.checkpointed:
            result[1]["checkpointed"] = True  # the run's end purges checkpoints only if so
        await self._save_logs(ctx)  # before the result: `run logs` of an ended step is whole
        out = await self._offload(tm, *result)
        if self._faults.take(self._faults.lose, tm.task):
            raise _Lost
        return out

    async def _save_logs(self, ctx: TaskContext) -> None:
        lines, dropped = ctx.log_capture.take()
        if not lines and not dropped:
            return
        key = keys.log_key(ctx.run_id, ctx.step_id, ctx.item)
        try:
            await append_step_log(await self._kv.get(protocol.KV_LOGS), key, lines, dropped)
        except Exception as exc:  # noqa: BLE001 - logs are observability: never fail the step
            log.warning("run %s step %s: log lines not stored: %s", ctx.run_id, ctx.step_id, exc)

    async def _resolve_input(self, tm: protocol.TaskMessage) -> tuple[str, dict[str, Any]] | None:
        """Fetch an input passed by reference; a failure result if it cannot be fetched."""
        try:
            tm.input = await self._payloads.resolve(tm.input)
        except Exception as exc:  # noqa: BLE001 - object store unreachable or the object expired
            message = f"cannot fetch the input of step {tm.step_id!r} from the object store: {exc}"
            log.warning("run %s: %s", tm.run_id, message)
            return ev.STEP_FAILED, failure_data(message, "PayloadError", retryable=True)
        return None

    async def _offload(
        self, tm: protocol.TaskMessage, event_type: str, data: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Store a large output (or Continue value) in the object store, keep a reference."""
        field = {ev.STEP_COMPLETED: "output", ev.STEP_CONTINUE: "value"}.get(event_type)
        if field is None:
            return event_type, data
        key = keys.payload_key(tm.run_id, tm.step_id, tm.attempt, tm.iteration, tm.item, field)
        try:
            return event_type, {**data, field: await self._payloads.offload(key, data[field])}
        except ValueError as exc:  # above the object store limit: the same output fails again
            return ev.STEP_FAILED, failure_data(
                f"{field} of step {tm.step_id!r}: {exc}", "OutputTooLargeError", retryable=False
            )
        except Exception as exc:  # noqa: BLE001 - any other store failure is retryable
            message = f"cannot store the {field} of step {tm.step_id!r}: {exc}"
            log.warning("run %s: %s", tm.run_id, message)
            return ev.STEP_FAILED, failure_data(message, "PayloadError", retryable=True)

    async def _run(
        self, task: Task[..., Any], tm: protocol.TaskMessage, ctx: TaskContext
    ) -> tuple[str, dict[str, Any]]:
        args: tuple[Any, ...] = (ctx,)
        if task.input_adapter is not None:
            try:
                args = (ctx, task.input_adapter.validate_python(tm.input))
            except ValidationError as exc:
                # Retrying the same input cannot help: fail the step for good.
                message = validation_message(task.task_name, exc)
                ctx.logger.warning("%s", message)
                return ev.STEP_FAILED, failure_data(
                    message, "InputValidationError", retryable=False
                )
        timeout_ns = tm.timeout_ns if tm.timeout_ns and tm.timeout_ns > 0 else task.timeout_ns
        if self._ended.get(tm.run_id, -1) >= (tm.run_retry or 0):
            raise _RunEnded  # (a task of a later retry of the run is still wanted)
        job = asyncio.ensure_future(self._call(task, args, timeout_ns))
        self._handlers.setdefault(tm.run_id, set()).add(job)
        began = time.perf_counter()
        try:
            result = await self._await_handler(job, tm.run_id)
        except _RunEnded:
            raise
        except _StepTimeout:
            assert timeout_ns is not None
            if not task.is_async:
                ctx.logger.warning(
                    "sync handler %r exceeded its timeout of %s; its thread cannot be "
                    "stopped and runs on in the background (its result will be ignored)",
                    task.task_name,
                    format_duration(timeout_ns),
                )
            return ev.STEP_FAILED, timeout_data(tm.step_id, timeout_ns)
        except Exception as exc:
            data = exception_data(exc)
            data["error"] = str(data["error"])[:MAX_ERROR_CHARS]
            if "traceback" in data:  # unexpected: the full traceback belongs in the log
                ctx.logger.warning("handler raised %s", type(exc).__name__, exc_info=exc)
            else:
                ctx.logger.info("handler failed (%s): %s", type(exc).__name__, data["error"])
            return ev.STEP_FAILED, data
        finally:
            metrics.series(metrics.WORKER_HANDLER_SECONDS, task.task_name).observe(
                time.perf_counter() - began
            )
        try:
            if isinstance(result, Continue):
                what = f"Continue value of step {tm.step_id!r}"
                value = to_json_value(result.value, task.continue_adapter, what)
                return ev.STEP_CONTINUE, continue_data(value)
            what = f"output of step {tm.step_id!r}"
            return ev.STEP_COMPLETED, completed_data(
                to_json_value(result, task.output_adapter, what)
            )
        except OutputError as exc:
            ctx.logger.warning("%s", exc)
            return ev.STEP_FAILED, failure_data(str(exc), "SerializationError", retryable=False)

    async def _await_handler(self, job: asyncio.Future[Any], run_id: str) -> Any:
        try:
            return await job
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if run_id in self._ended and not (current is not None and current.cancelling()):
                raise _RunEnded from None  # cancelled by the run's end, not by shutdown
            job.cancel()
            raise
        finally:
            jobs = self._handlers.get(run_id)
            if jobs is not None:
                jobs.discard(job)
                if not jobs:
                    del self._handlers[run_id]

    async def _call(
        self, task: Task[..., Any], args: tuple[Any, ...], timeout_ns: int | None
    ) -> Any:
        if timeout_ns is None:
            return await self._invoke(task, args)
        try:
            async with asyncio.timeout(timeout_ns / 1e9) as scope:
                return await self._invoke(task, args)
        except TimeoutError:
            if scope.expired():
                raise _StepTimeout from None
            raise  # the handler's own TimeoutError: an ordinary failure

    async def _invoke(self, task: Task[..., Any], args: tuple[Any, ...]) -> Any:
        if task.is_async:
            return await task.fn(*args)
        # A thread keeps the loop free; abandon_on_cancel lets a timeout or shutdown stop
        # waiting for it (Python cannot kill a thread). The limiter bounds live threads.
        return await anyio.to_thread.run_sync(
            functools.partial(task.fn, *args), abandon_on_cancel=True, limiter=self._limiter
        )

    def _result_body(
        self, tm: protocol.TaskMessage, event_type: str, data: dict[str, Any]
    ) -> tuple[str, bytes, str]:
        """The result event's type, bytes and dedup id; too big for one message is a final
        failure."""
        event, result_id = ev.step_result(tm, event_type, data)
        body = event.to_bytes()
        if len(body) <= self._max_event_bytes:
            return event_type, body, result_id
        what = "output" if event_type == ev.STEP_COMPLETED else "result"
        message = (
            f"{what} of step {tm.step_id!r} is {len(body)} bytes as JSON; the limit is "
            f"{self._max_event_bytes} bytes (one NATS message)"
        )
        log.warning("run %s: %s", tm.run_id, message)
        data = failure_data(message, "OutputTooLargeError", retryable=False)
        event, result_id = ev.step_failed(tm, data)
        return ev.STEP_FAILED, event.to_bytes(), result_id

    async def _publish_started(
        self, tm: protocol.TaskMessage, delivery: int
    ) -> asyncio.Future[PubAck] | None:
        # Not awaited on the hot path: the handler starts while the ack is in flight.
        event, started_id = ev.step_started(
            tm, {"worker": self._worker_id, "worker_name": self._worker_name, "delivery": delivery}
        )
        try:
            future = await self._js.publish_async(
                protocol.history_subject(tm.run_id),
                event.to_bytes(),
                headers=msg_id(started_id),
            )
        except Exception as exc:  # noqa: BLE001 - step.started is informational: the result matters
            log.warning(
                "run %s step %s: cannot publish step.started: %s", tm.run_id, tm.step_id, exc
            )
            return None
        future.add_done_callback(functools.partial(_log_started_failure, tm))
        return future

    async def _publish_result(self, tm: protocol.TaskMessage, body: bytes, result_id: str) -> bool:
        subject = protocol.history_subject(tm.run_id)
        headers = msg_id(result_id)
        for delay in (*_RESULT_RETRY_DELAYS, None):
            try:
                await self._js.publish(subject, body, headers=dict(headers), timeout=5.0)
                return True
            except Exception as exc:  # noqa: BLE001 - retry, then give the task back
                if delay is None:
                    log.error(
                        "run %s step %s: cannot publish the result (%s); giving the task back",
                        tm.run_id,
                        tm.step_id,
                        exc,
                    )
                    return False
                log.warning("run %s: result publish failed (%s); retrying", tm.run_id, exc)
                await asyncio.sleep(delay)
        return False


async def _settle_started(
    job: asyncio.Task[asyncio.Future[PubAck] | None] | None, tm: protocol.TaskMessage
) -> None:
    """Wait for a step.started publish begun for this task, if one was."""
    if job is None:
        return
    started = await job
    if started is not None:
        await _settle(started, tm)


async def _parse(msg: Msg) -> protocol.TaskMessage | None:
    """The task message, or None for a malformed one (acked: dropped, logged)."""
    try:
        return protocol.TaskMessage.model_validate_json(msg.data)
    except ValidationError as exc:
        # Poison: redelivering it cannot help, and it must not stop the loop.
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:3]
        )
        log.warning(
            "dropping a malformed task message on %s (stream seq %s): %s",
            msg.subject,
            _stream_seq(msg),
            problems,
        )
        await _quietly(msg.ack(), "ack of a malformed message")
        return None


def _delivery(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # noqa: BLE001 - not a JetStream message (cannot happen on a pull feed)
        return 1


def _stream_seq(msg: Msg) -> int | None:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:  # noqa: BLE001 - not a JetStream message: no sequence
        return None


def _log_started_failure(tm: protocol.TaskMessage, future: asyncio.Future[PubAck]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.warning("run %s step %s: step.started not stored: %s", tm.run_id, tm.step_id, exc)


async def _settle(future: asyncio.Future[PubAck], tm: protocol.TaskMessage) -> None:
    """Bound the life of the started publish (an async publish has no timeout of its own)."""
    if future.done():
        return
    await asyncio.wait({future}, timeout=_STARTED_SETTLE_S)
    if not future.done():
        log.warning("run %s step %s: step.started was not acknowledged", tm.run_id, tm.step_id)
        future.cancel()


async def _quietly(op: Awaitable[None], what: str) -> None:
    """Acks and naks on a closed connection fail; the server's ack timer covers that."""
    try:
        await op
    except Exception as exc:  # noqa: BLE001 - closed connection: the ack timer covers it
        log.debug("%s failed: %s", what, exc)
