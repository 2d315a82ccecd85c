"""History events: the immutable log of a run (``history.<run_id>``).

Two kinds share one envelope. *Inputs* change a run: ``advance()`` applies them. *Records*
are written by the engine to describe a decision it already applied (``workflow.completed``,
``step.skipped`` ...); reading one back is a no-op, which keeps replay deterministic.

Every input is made by one constructor here that returns ``(event, dedup_id)``: the dedup
id is part of the protocol (see :mod:`dagnats.protocol.dedup`), never spelled by a caller.
"""

from __future__ import annotations

import secrets
from typing import Any

from dagnats.protocol.control import ScheduledRun
from dagnats.protocol.dedup import scheduled_start_id, trigger_fire_id, trigger_start_id
from dagnats.protocol.event_records import (
    approval_request,
    approval_requested,
    engine_failed,
    planner_materialized_data,
    signal_received,
)
from dagnats.protocol.event_types import (
    _CANCEL_SUFFIX,
    CANCEL_WAITER_PREFIX,
    CHILD_COMPLETED,
    CHILD_FAILED,
    COMPENSATE_STARTED,
    COMPENSATE_STEP,
    INPUT_TYPES,
    PLANNER_MATERIALIZED,
    SIGNAL_RECEIVED,
    STEP_APPROVAL_REQUESTED,
    STEP_APPROVED,
    STEP_CHILD_STARTED,
    STEP_COMPLETED,
    STEP_CONTINUE,
    STEP_FAILED,
    STEP_MAP_COMPLETED,
    STEP_MAP_STARTED,
    STEP_RECOVERED,
    STEP_REJECTED,
    STEP_RETRYING,
    STEP_SKIPPED,
    STEP_SLEEP_COMPLETED,
    STEP_SLEEP_STARTED,
    STEP_STARTED,
    STEP_WAIT_MATCHED,
    STEP_WAIT_STARTED,
    STEP_WAIT_TIMEOUT,
    TERMINAL_RUN_EVENTS,
    TIMER_FIRED,
    WORKER_LOST,
    WORKFLOW_ADMITTED,
    WORKFLOW_CANCEL_REQUESTED,
    WORKFLOW_CANCELLED,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_PENDING,
    WORKFLOW_RETRY_REQUESTED,
    WORKFLOW_STARTED,
    CancelCause,
    Event,
    Stamped,
    utcnow,
)
from dagnats.protocol.messages import TaskMessage, TimerMessage
from dagnats.protocol.names import name_token

# --- inputs -------------------------------------------------------------------------------


def workflow_started(
    run_id: str,
    workflow: str,
    revision: int,
    input: Any,
    *,
    idempotency_key: str | None,
    nonce: str | None = None,
    rerun_of: str | None = None,
    control_root: str | None = None,
) -> Stamped:
    """A run started through the API: ``<run>.started.<nonce>``, unique per request, so an
    id reused after ``delete_run`` can start again (a repeat for a live run is a no-op).

    ``rerun_of`` names the run this one repeats (``Client.rerun``): same revision and input.
    """
    data: dict[str, Any] = {
        "workflow": workflow,
        "revision": revision,
        "input": input,
        "idempotency_key": idempotency_key,
    }
    if rerun_of is not None:
        data["rerun_of"] = rerun_of
    if control_root is not None:
        # Started by a handler's ctx.control: the top run whose control budget it uses.
        data["control_root"] = control_root
    event = Event(type=WORKFLOW_STARTED, run_id=run_id, data=data)
    return event, f"{run_id}.started.{nonce or secrets.token_hex(6)}"


def scheduled_started(record: ScheduledRun) -> Stamped:
    """A scheduled run whose time came: ``<run>.started.scheduled`` (its timer may fire twice:
    the second start is dropped)."""
    data = {
        "workflow": record.workflow,
        "revision": record.revision,
        "input": record.input,
        "idempotency_key": None,
        "scheduled_at": record.run_at.isoformat(),
    }
    event = Event(type=WORKFLOW_STARTED, run_id=record.run_id, data=data)
    return event, scheduled_start_id(record.run_id)


def trigger_started(
    run_id: str,
    workflow: str,
    revision: int,
    envelope: dict[str, Any],
    *,
    trigger_id: str,
    minute: int | None = None,
    token: str | None = None,
) -> Stamped:
    """A run started by a trigger: ``trigger.<id>.<unix minute>`` for a cron minute (every
    trigger service computes the same id), else ``trigger.<id>.x<token>``."""
    data = {"workflow": workflow, "revision": revision, "input": envelope, "idempotency_key": None}
    event = Event(type=WORKFLOW_STARTED, run_id=run_id, data=data)
    if minute is not None:
        return event, trigger_fire_id(trigger_id, minute)
    return event, trigger_start_id(trigger_id, token or secrets.token_hex(8))


def child_started(
    child_run_id: str,
    workflow: str,
    revision: int,
    input: Any,
    *,
    parent: dict[str, Any] | None,
    depth: int,
) -> Stamped:
    """A sub-workflow's run started by its parent step: ``<child>.started``."""
    data = {
        "workflow": workflow,
        "revision": revision,
        "input": input,
        "parent": parent,
        "depth": depth,
    }
    event = Event(type=WORKFLOW_STARTED, run_id=child_run_id, data=data)
    return event, f"{child_run_id}.started"


def cancel_requested(run_id: str, reason: str, *, by: CancelCause = "request") -> Stamped:
    """``<run>.cancel`` (API), ``<run>.cancel.parent`` (its parent ended or cancelled the
    child step), ``<run>.cancel.queue`` (its workflow's admission queue is full),
    ``<run>.cancel.singleton`` (a singleton workflow in ``cancel`` mode started anew)."""
    event = Event(type=WORKFLOW_CANCEL_REQUESTED, run_id=run_id, data={"reason": reason})
    return event, f"{run_id}.cancel{_CANCEL_SUFFIX[by]}"


def retry_requested(run_id: str, retry: int, reason: str | None = None) -> Stamped:
    """Resume a failed or cancelled run in place: ``<run>.retry.<retry>``.

    ``retry`` is the run's retry count plus one (1 for its first retry), read from its state
    by the caller: two requests for the same retry share the dedup id, and ``advance``
    applies a retry only when it is the next one, so a run is resumed once per request
    however often the event is published or replayed.
    """
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 1:
        raise ValueError(f"retry must be an integer >= 1 (the run's next retry), got {retry!r}")
    data: dict[str, Any] = {"retry": retry}
    if reason:
        data["reason"] = reason
    event = Event(type=WORKFLOW_RETRY_REQUESTED, run_id=run_id, data=data)
    return event, f"{run_id}.retry.{retry}"


def workflow_admitted(run_id: str, nonce: str | None = None) -> Stamped:
    """A pending run got its concurrency slot: ``<run>.admitted``, or
    ``<run>.admitted.<nonce>`` for a run admitted again within the dedup window (a retried
    run queues for its slot again; ``advance`` admits only a pending run, so a repeat is
    harmless)."""
    suffix = f".{nonce}" if nonce else ""
    return Event(type=WORKFLOW_ADMITTED, run_id=run_id), f"{run_id}.admitted{suffix}"


def _of_task(task: TaskMessage, type_: str, data: Any) -> Event:
    return Event(
        type=type_,
        run_id=task.run_id,
        step_id=task.step_id,
        attempt=task.attempt,
        iteration=task.iteration,
        item=task.item,
        data=data,
    )


def step_started(task: TaskMessage, data: dict[str, Any]) -> Stamped:
    """A worker picked ``task`` up: ``<task dedup id>.started``."""
    return _of_task(task, STEP_STARTED, data), f"{task.dedup_id}.started"


RESULT_TYPES: frozenset[str] = frozenset({STEP_COMPLETED, STEP_FAILED, STEP_CONTINUE})


def step_result(task: TaskMessage, type_: str, data: dict[str, Any]) -> Stamped:
    """A worker's one result of ``task`` (completed, failed or continue):
    ``<task dedup id>.result``, whichever it is, so a task has one result at most."""
    if type_ not in RESULT_TYPES:
        raise ValueError(f"event type {type_!r} is not a step result ({sorted(RESULT_TYPES)})")
    return _of_task(task, type_, data), f"{task.dedup_id}.result"


def step_completed(task: TaskMessage, data: dict[str, Any]) -> Stamped:
    return step_result(task, STEP_COMPLETED, data)


def step_failed(task: TaskMessage, data: dict[str, Any]) -> Stamped:
    return step_result(task, STEP_FAILED, data)


def step_continue(task: TaskMessage, data: dict[str, Any]) -> Stamped:
    return step_result(task, STEP_CONTINUE, data)


def worker_lost(task: TaskMessage, deliveries: int) -> Stamped:
    """``task`` was delivered ``deliveries`` times without an answer: ``<task dedup id>.lost``."""
    data = {
        "error": f"worker lost: task '{task.task}' was delivered {deliveries} times "
        "without an answer",
        "error_type": "WorkerLost",
        "retryable": True,
        "deliveries": deliveries,
    }
    return _of_task(task, WORKER_LOST, data), f"{task.dedup_id}.lost"


def timer_fired(timer: TimerMessage) -> Stamped:
    """A due timer: ``fired.<timer dedup id>``."""
    data = timer.data
    event = Event(
        type=TIMER_FIRED,
        run_id=timer.run_id,
        step_id=timer.step_id,
        attempt=data.get("attempt"),
        iteration=data.get("iteration"),
        item=data.get("item"),
        data=data,
    )
    return event, f"fired.{timer.dedup_id}"


def wait_matched(run_id: str, step_id: str, name: str, payload: Any) -> Stamped:
    """Event ``name`` matched a waiting step: ``<run>.<step>.matched``."""
    data = {"event": payload, "name": name}
    event = Event(type=STEP_WAIT_MATCHED, run_id=run_id, step_id=step_id, data=data)
    return event, f"{run_id}.{name_token(step_id)}.matched"


def _decided(token: str, type_: str, run_id: str, step_id: str, data: Any) -> Stamped:
    # Per token: a token is one decision of one approval request, while
    # "<run>.<step>.decided" would collide when the step asks again within the window.
    return Event(type=type_, run_id=run_id, step_id=step_id, data=data), f"decided.{token}"


def step_approved(token: str, run_id: str, step_id: str, data: Any) -> Stamped:
    """``decided.<token>``."""
    return _decided(token, STEP_APPROVED, run_id, step_id, {"data": data})


def step_rejected(token: str, run_id: str, step_id: str, reason: Any) -> Stamped:
    """``decided.<token>``."""
    return _decided(token, STEP_REJECTED, run_id, step_id, {"reason": reason})


def child_completed(
    parent_run_id: str, parent_step_id: str, child_run_id: str, output: Any
) -> Stamped:
    """A child run completed: ``<child>.finish.parent`` (to the parent's history)."""
    data = {"child_run_id": child_run_id, "status": "completed", "output": output}
    event = Event(type=CHILD_COMPLETED, run_id=parent_run_id, step_id=parent_step_id, data=data)
    return event, f"{child_run_id}.finish.parent"


def child_failed(
    parent_run_id: str, parent_step_id: str, child_run_id: str, status: str, error: str
) -> Stamped:
    """A child run failed, was cancelled, or could not start: ``<child>.finish.parent``."""
    data = {"child_run_id": child_run_id, "status": status, "error": error}
    event = Event(type=CHILD_FAILED, run_id=parent_run_id, step_id=parent_step_id, data=data)
    return event, f"{child_run_id}.finish.parent"


__all__ = [
    "CANCEL_WAITER_PREFIX",
    "CHILD_COMPLETED",
    "CHILD_FAILED",
    "COMPENSATE_STARTED",
    "COMPENSATE_STEP",
    "INPUT_TYPES",
    "PLANNER_MATERIALIZED",
    "RESULT_TYPES",
    "SIGNAL_RECEIVED",
    "STEP_APPROVAL_REQUESTED",
    "STEP_APPROVED",
    "STEP_CHILD_STARTED",
    "STEP_COMPLETED",
    "STEP_CONTINUE",
    "STEP_FAILED",
    "STEP_MAP_COMPLETED",
    "STEP_MAP_STARTED",
    "STEP_RECOVERED",
    "STEP_REJECTED",
    "STEP_RETRYING",
    "STEP_SKIPPED",
    "STEP_SLEEP_COMPLETED",
    "STEP_SLEEP_STARTED",
    "STEP_STARTED",
    "STEP_WAIT_MATCHED",
    "STEP_WAIT_STARTED",
    "STEP_WAIT_TIMEOUT",
    "TERMINAL_RUN_EVENTS",
    "TIMER_FIRED",
    "WORKER_LOST",
    "WORKFLOW_ADMITTED",
    "WORKFLOW_CANCELLED",
    "WORKFLOW_CANCEL_REQUESTED",
    "WORKFLOW_COMPENSATED",
    "WORKFLOW_COMPLETED",
    "WORKFLOW_FAILED",
    "WORKFLOW_PENDING",
    "WORKFLOW_RETRY_REQUESTED",
    "WORKFLOW_STARTED",
    "CancelCause",
    "Event",
    "Stamped",
    "approval_request",
    "approval_requested",
    "cancel_requested",
    "child_completed",
    "child_failed",
    "child_started",
    "engine_failed",
    "planner_materialized_data",
    "retry_requested",
    "scheduled_started",
    "signal_received",
    "step_approved",
    "step_completed",
    "step_continue",
    "step_failed",
    "step_rejected",
    "step_result",
    "step_started",
    "timer_fired",
    "trigger_started",
    "utcnow",
    "wait_matched",
    "worker_lost",
    "workflow_admitted",
    "workflow_started",
]
