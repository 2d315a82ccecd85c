"""History events: the immutable log of a run (``history.<run_id>``).

Two kinds share one envelope. *Inputs* change a run: ``advance()`` applies them. *Records*
are written by the engine to describe a decision it already applied (``workflow.completed``,
``step.skipped`` ...); reading one back is a no-op, which keeps replay deterministic.

Every input is made by one constructor here that returns ``(event, dedup_id)``: the dedup
id is part of the protocol (see :mod:`dagnats.protocol.dedup`), never spelled by a caller.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dagnats.protocol import clock
from dagnats.protocol.control import ScheduledRun
from dagnats.protocol.dedup import scheduled_start_id, trigger_fire_id, trigger_start_id
from dagnats.protocol.messages import TaskMessage, TimerMessage
from dagnats.protocol.names import name_token

# --- inputs: published by the API, workers, timers, the correlator, child runs ---
WORKFLOW_STARTED = "workflow.started"  # data: {"input", "workflow", "revision", "parent"?, ...}
WORKFLOW_CANCEL_REQUESTED = "workflow.cancel_requested"  # data: {"reason"}
STEP_STARTED = "step.started"  # worker picked the task up
STEP_COMPLETED = "step.completed"  # data: {"output"}
STEP_FAILED = "step.failed"  # data: {"error", "error_type", "retryable", "retry_after_ns"?}
STEP_CONTINUE = "step.continue"  # agent loop: data: {"value"}
TIMER_FIRED = "timer.fired"  # data: {"kind", ...} (see TimerKind)
STEP_WAIT_MATCHED = "step.wait.matched"  # data: {"event": <payload>}
STEP_APPROVED = "step.approval.approved"  # data: {"data"}
STEP_REJECTED = "step.approval.rejected"  # data: {"reason"}
CHILD_COMPLETED = "step.child.completed"  # data: {"child_run_id", "output"}
CHILD_FAILED = "step.child.failed"  # data: {"child_run_id", "error", "status"}
WORKER_LOST = "step.worker_lost"  # max deliveries exhausted: a failed attempt
WORKFLOW_ADMITTED = "workflow.admitted"  # a pending run got its concurrency slot
# A failed or cancelled run resumes in place: data: {"retry": n (1-based), "reason"?}
WORKFLOW_RETRY_REQUESTED = "workflow.retry_requested"

# wait_for_event waiters registered for a workflow's ``cancel_on`` use these step ids.
CANCEL_WAITER_PREFIX = "__cancel_"

INPUT_TYPES: frozenset[str] = frozenset(
    {
        WORKFLOW_STARTED,
        WORKFLOW_CANCEL_REQUESTED,
        STEP_STARTED,
        STEP_COMPLETED,
        STEP_FAILED,
        STEP_CONTINUE,
        TIMER_FIRED,
        STEP_WAIT_MATCHED,
        STEP_APPROVED,
        STEP_REJECTED,
        CHILD_COMPLETED,
        CHILD_FAILED,
        WORKER_LOST,
        WORKFLOW_ADMITTED,
        WORKFLOW_RETRY_REQUESTED,
    }
)

# --- records: written by the engine after applying a decision ---
WORKFLOW_COMPLETED = "workflow.completed"
WORKFLOW_FAILED = "workflow.failed"
WORKFLOW_CANCELLED = "workflow.cancelled"
WORKFLOW_COMPENSATED = "workflow.compensated"
WORKFLOW_PENDING = "workflow.pending"  # waiting for a concurrency slot
STEP_SKIPPED = "step.skipped"
STEP_RETRYING = "step.retrying"  # data: {"delay_ns", "next_attempt", "error"}
STEP_RECOVERED = "step.recovered"  # data: {"handler", "error"}
STEP_SLEEP_STARTED = "step.sleep.started"  # data: {"until"}
STEP_SLEEP_COMPLETED = "step.sleep.completed"
STEP_WAIT_STARTED = "step.wait.started"  # data: {"event", "match"}
STEP_WAIT_TIMEOUT = "step.wait.timeout"
STEP_MAP_STARTED = "step.map.started"  # data: {"items"}
STEP_MAP_COMPLETED = "step.map.completed"
STEP_APPROVAL_REQUESTED = "step.approval.requested"  # data: {"token", "expires_at", "message"}
SIGNAL_RECEIVED = "signal.received"  # data: {"name", "data"} (a signal was sent to the run)
STEP_CHILD_STARTED = "step.child.started"  # data: {"child_run_id", "workflow"}
COMPENSATE_STARTED = "compensate.started"  # data: {"steps": [...], "failed_step"}
COMPENSATE_STEP = "compensate.step"  # data: {"step", "handler"}
PLANNER_MATERIALIZED = "planner.materialized"  # data: see planner_materialized_data

TERMINAL_RUN_EVENTS: frozenset[str] = frozenset(
    {WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_CANCELLED, WORKFLOW_COMPENSATED}
)


def utcnow() -> datetime:
    return clock.now()


class Event(BaseModel):
    """One history event. ``seq`` is the stream sequence, filled in when read back."""

    model_config = ConfigDict(extra="ignore")

    type: str
    run_id: str
    step_id: str | None = None
    attempt: int | None = None
    iteration: int | None = None
    item: int | None = None  # map instance index
    ts: datetime = Field(default_factory=utcnow)
    data: Any = None
    seq: int = Field(default=0, exclude=True)

    @property
    def is_input(self) -> bool:
        return self.type in INPUT_TYPES

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, seq: int = 0) -> Event:
        ev = cls.model_validate_json(raw)
        ev.seq = seq
        return ev


Stamped = tuple[Event, str]
"""An event and the dedup id it is published under."""

CancelCause = Literal["request", "parent", "queue", "singleton"]
_CANCEL_SUFFIX: dict[str, str] = {
    "request": "",
    "parent": ".parent",
    "queue": ".queue",
    "singleton": ".singleton",
}


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


# --- records written outside advance() ----------------------------------------------------


def signal_received(run_id: str, name: str, data: Any, revision: int) -> Stamped:
    """Signal ``name`` was stored at KV ``revision``: ``signal.<run>.<name>.<revision>``."""
    event = Event(type=SIGNAL_RECEIVED, run_id=run_id, data={"name": name, "data": data})
    return event, f"signal.{run_id}.{name}.{revision}"


def engine_failed(run_id: str, message: str) -> Stamped:
    """The engine failed the run itself (an event it could not apply): ``<run>.failed.engine``."""
    data = {"error": {"message": message, "type": "EngineError"}}
    return Event(type=WORKFLOW_FAILED, run_id=run_id, data=data), f"{run_id}.failed.engine"


def approval_request(
    run_id: str,
    step_id: str,
    token: str,
    expires_at: datetime,
    *,
    subject: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Go's approval request body, as published on the step's ``subject`` (and recorded)."""
    return {
        "token": token,
        "run_id": run_id,
        "step_id": step_id,
        "subject": subject,
        "description": description,
        "metadata": metadata or {},
        "expires_at": expires_at.isoformat(),
    }


def approval_requested(
    run_id: str,
    step_id: str,
    token: str,
    expires_at: datetime,
    message: str | None,
    request: dict[str, Any] | None = None,
) -> Stamped:
    """``<run>.<step>.approval.<deadline as float seconds>``: one per approval request.

    ``request`` (Go's request fields: subject, description, metadata) is recorded beside.
    """
    data = {"token": token, "expires_at": expires_at.isoformat(), "message": message}
    if request is not None:
        data.update({k: request[k] for k in ("subject", "description", "metadata")})
    event = Event(type=STEP_APPROVAL_REQUESTED, run_id=run_id, step_id=step_id, data=data)
    return event, f"{run_id}.{name_token(step_id)}.approval.{expires_at.timestamp()}"


def planner_materialized_data(planner_id: str, step_ids: list[str], total: int) -> dict[str, Any]:
    """The data of a ``planner.materialized`` record: what a planner's fragment added.

    ``steps`` are the new (prefixed) step ids in fragment order; ``dynamic_steps`` is how many
    steps planners have added to the run so far, this fragment included.
    """
    return {"planner": planner_id, "steps": list(step_ids), "dynamic_steps": total}
