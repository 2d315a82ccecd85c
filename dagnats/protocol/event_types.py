"""The history event envelope and its type strings (inputs and records); re-exported by
:mod:`dagnats.protocol.events`, where the constructors of the inputs are and callers import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from dagnats.protocol import clock
from dagnats.protocol.model_config import WIRE_CONFIG

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

    model_config = WIRE_CONFIG

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
