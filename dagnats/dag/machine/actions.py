"""Actions: what ``advance()`` asks the I/O shell to do. Plain data, no behaviour.

Every action that publishes carries a deterministic ``dedup_id`` so that executing it twice
(an engine crash between publish and ack) is invisible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from dagnats.protocol.events import Event

TimerKind = Literal[
    "retry",  # data: {"attempt", "item"?}: dispatch the next attempt
    "loop_delay",  # data: {"iteration"}: dispatch the next agent-loop iteration
    "sleep",  # sleep step is due
    "wait_timeout",  # wait_for_event gave up
    "approval_timeout",  # approval expired
    "step_timeout",  # engine backstop for a worker that never answered
    "workflow_timeout",  # the run's own deadline
    "sticky_fallback",  # soft sticky: the bound worker did not start the attempt in time
]


@dataclass(frozen=True, slots=True)
class DispatchTask:
    """Publish a task to ``task.<task>[.<worker_group>]``."""

    run_id: str
    workflow: str
    step_id: str
    task: str
    input: Any
    attempt: int
    iteration: int
    item: int | None
    timeout_ns: int | None
    worker_group: str | None
    dedup_id: str
    idempotency_key: str
    rate_limit: tuple[int, int] | None = None  # (limit, period_ns)
    max_task_concurrency: int | None = None
    # keyed_rate_limit: (bucket token of the key's value, limit, period_ns, units)
    keyed_rate: tuple[str, int, int, int] | None = None
    metadata: dict[str, Any] | None = None  # the step's metadata, for ctx.metadata
    capabilities: tuple[str, ...] = ()  # the step's required_capabilities
    budget_warning: bool = False  # an agent loop at or past its budget_warn_at
    budget_final: bool = False  # an agent loop at its budget_force_at: no more Continue
    sticky: str = ""  # the workflow's sticky mode ("soft" / "hard"): route to the run's worker
    fallback: bool = False  # soft sticky: the bound worker did not start it; send to any
    control_root: str | None = None  # the run whose control-plane budget the handler uses
    run_retry: int = 0  # the run's retry count (``TaskMessage.run_retry``)
    agent: bool = False  # an ``agent`` step: the engine's agent routes may pick its group


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """Deliver ``timer.fired`` with ``data`` (which holds ``kind``) to the run at ``fire_at``."""

    run_id: str
    kind: TimerKind
    step_id: str | None
    fire_at: datetime
    data: dict[str, Any]
    dedup_id: str


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """Append an engine record to the run's history (never an input to ``advance``)."""

    event: Event
    dedup_id: str


@dataclass(frozen=True, slots=True)
class StartChildRun:
    run_id: str  # the parent
    step_id: str
    child_run_id: str
    workflow: str
    revision: int | None
    input: Any
    detach: bool
    depth: int


@dataclass(frozen=True, slots=True)
class CancelChildRun:
    child_run_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RegisterWaiter:
    """Register a wait_for_event correlation entry; the correlator publishes the match."""

    run_id: str
    step_id: str
    event: str
    match: dict[str, Any]  # event field path -> value it must equal
    lookback_ns: int
    registered_at: datetime
    as_text: bool = False  # Go's match: compare the values as strings ("123" == 123)


@dataclass(frozen=True, slots=True)
class RemoveWaiter:
    run_id: str
    step_id: str
    event: str


@dataclass(frozen=True, slots=True)
class RequestApproval:
    """Mint a single-use token (the shell makes it; the pure core has no randomness)."""

    run_id: str
    step_id: str
    expires_at: datetime
    message: str | None
    subject: str | None = None  # also publish the request on this core NATS subject
    description: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    run_id: str
    step_id: str
    item: int | None
    task: str | None
    input: Any
    error: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class Respond:
    """A ``respond`` step: hand ``data`` to whoever waits on the run's response."""

    run_id: str
    step_id: str
    status: int
    data: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class AdmitRun:
    """Ask for one of the workflow's ``max_runs`` slots; the shell answers with
    ``workflow.admitted`` now or when a slot frees up (in arrival order)."""

    run_id: str
    workflow: str
    max_runs: int
    # The pending backlog is ordered by arrived_at + priority offset (ties: arrival order).
    priority_offset_s: int = 0
    arrived_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FinishRun:
    """The run reached a terminal state: notify a parent, release slots, clean up."""

    run_id: str
    status: str
    output: Any
    error: dict[str, Any] | None
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    child_steps: tuple[str, ...] = field(default_factory=tuple)
    # Whether the run could have left timers behind (purging costs the server a scan).
    timers: bool = True
    # Whether the run may have left checkpoints behind (else their purge is skipped).
    checkpoints: bool = True
    retries: int = 0  # the run's retry count: workers drop its tasks up to this retry


Action = (
    AdmitRun
    | DispatchTask
    | ScheduleTimer
    | RecordEvent
    | StartChildRun
    | CancelChildRun
    | RegisterWaiter
    | RemoveWaiter
    | RequestApproval
    | DeadLetter
    | Respond
    | FinishRun
)
