"""Run and step state: what ``advance()`` reads and returns, and what the snapshot holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from dagnats.protocol.model_config import WIRE_CONFIG

RunStatus = Literal[
    "scheduled", "pending", "running", "completed", "failed", "cancelled", "compensated"
]
StepStatus = Literal[
    "pending", "queued", "running", "completed", "failed", "skipped", "cancelled", "recovered"
]
RUN_TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled", "compensated"})
STEP_TERMINAL: frozenset[str] = frozenset(
    {"completed", "failed", "skipped", "cancelled", "recovered"}
)
# What a step is waiting on while not running a handler.
Waiting = Literal["retry", "loop_delay", "sleep", "event", "approval", "child", "handler", "slot"]


class StepError(BaseModel):
    model_config = WIRE_CONFIG

    message: str
    type: str = "Error"
    retryable: bool = True
    step_id: str | None = None
    item: int | None = None


class ItemState(BaseModel):
    """One instance of a map step."""

    model_config = WIRE_CONFIG

    status: StepStatus = "pending"
    attempts: int = 0
    output: Any = None
    error: StepError | None = None
    waiting: Waiting | None = None
    # When the worker reported the current attempt started (the step-timeout backstop's clock).
    attempt_started_at: datetime | None = None
    # Soft sticky: the attempt ("<iteration>.<attempt>") whose fallback copy was sent.
    fell_back: str | None = None
    # Attempts made before the run's last retry: the retry policy counts from here, so a
    # retried run gives each resumed instance its full retry budget again.
    retry_base: int = 0


class StepState(BaseModel):
    model_config = WIRE_CONFIG

    status: StepStatus = "pending"
    attempts: int = 0  # attempts dispatched so far (1-based once dispatched)
    # agent loop: iteration (0-based); handler step: how many times it ran before this use
    # (a shared on_failure/compensate handler may run once per step it serves)
    iteration: int = 0
    input: Any = None
    output: Any = None
    error: StepError | None = None
    waiting: Waiting | None = None
    started_at: datetime | None = None  # first dispatch (agent loop: max_duration clock)
    finished_at: datetime | None = None
    items: list[ItemState] | None = None  # map instances
    items_done: int = 0  # map instances completed (kept so fan-in is O(1), not O(items))
    # When the worker reported the current attempt started (the step-timeout backstop's clock).
    attempt_started_at: datetime | None = None
    child_run_id: str | None = None
    # handler steps (on_failure / compensate): which step they serve
    handling: str | None = None
    # Soft sticky: the attempt ("<iteration>.<attempt>") whose fallback copy was sent.
    fell_back: str | None = None
    # Attempts made before the run's last retry (see ItemState.retry_base).
    retry_base: int = 0


class ParentRef(BaseModel):
    model_config = WIRE_CONFIG

    run_id: str
    step_id: str
    depth: int = 1


class RunFailure(BaseModel):
    """Why a run ended without a result: the ``error`` field of :class:`RunState`.

    Not to be confused with the exception :class:`dagnats.errors.RunError`, which the client
    raises from such a state.
    """

    model_config = WIRE_CONFIG

    message: str
    step_id: str | None = None
    type: str = "Error"


class RunState(BaseModel):
    model_config = WIRE_CONFIG

    run_id: str
    workflow: str
    revision: int | None = None
    status: RunStatus = "running"
    input: Any = None
    output: Any = None
    error: RunFailure | None = None
    steps: dict[str, StepState] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    last_seq: int = 0  # stream sequence of the last applied event
    parent: ParentRef | None = None
    # Sub-workflow nesting depth (0 = a top-level run); kept for detached children too,
    # which have no parent to report to but still count towards MAX_SUB_WORKFLOW_DEPTH.
    depth: int = 0
    idempotency_key: str | None = None
    # step ids in the order they completed (compensation runs the reverse)
    completion_order: list[str] = Field(default_factory=list)
    # compensation in progress: steps still to compensate, in order
    compensating: list[str] | None = None
    failed_step: str | None = None  # the step whose failure ended or compensated the run
    # Fragments that planner steps added: planner id -> its steps as the handler returned
    # them (validated; ids not yet prefixed). The machine derives the run's full definition
    # from the definition plus these, so a snapshot and a replay agree.
    plans: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    # Started through a handler's ctx.control: the top run whose budget of control-plane
    # operations its own handlers share (None: this run is a root).
    control_root: str | None = None
    retries: int = 0  # how many times the run was resumed in place (``retry_run``)
    rerun_of: str | None = None  # the run this one repeats (``rerun``), if any
    # Whether an attempt may have stored a checkpoint: a result said so, or an attempt
    # ended without a result. The run's end purges checkpoints only then.
    checkpoints: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in RUN_TERMINAL
