"""The option models of a step: each step type's ``config``, skip conditions and keyed rate
limits. Re-exported by :mod:`dagnats.dag.definition.models`, where callers import them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
)

from dagnats.dag.definition.model_base import (
    MAX_ITERATIONS,
    MAX_MAP_ITEMS,
    MAX_PLANNER_DEPTH,
    MAX_PLANNER_STEPS,
    DottedName,
    Name,
    _Strict,
)
from dagnats.dag.definition.spellings import drop_schema_key
from dagnats.protocol.durations import DAY, Duration, DurationLike
from dagnats.protocol.names import MAX_NAME_LEN


class AgentLoopConfig(_Strict):
    max_iterations: int = Field(gt=0, le=MAX_ITERATIONS)
    max_duration: Duration | None = None
    loop_delay: Duration | None = None
    budget_warn_at: int | None = Field(default=None, ge=1, le=MAX_ITERATIONS)
    """From this iteration (1-based) on, the handler sees ``ctx.budget_warning`` true."""
    budget_force_at: int | None = Field(default=None, ge=1, le=MAX_ITERATIONS)
    """At this iteration (1-based) a ``Continue`` is refused: the step must finish."""


class PlannerConfig(_Strict):
    """A ``planner`` step: its handler returns ``{"steps": [StepDef...]}`` to join the run."""

    max_steps: int = Field(default=MAX_PLANNER_STEPS, ge=1, le=MAX_PLANNER_STEPS)
    """At most this many steps in the fragment."""
    max_depth: int = Field(default=MAX_PLANNER_DEPTH, ge=0, le=MAX_PLANNER_DEPTH)
    """The longest dependency chain inside the fragment, in edges (0 = no dependencies)."""
    allowed_tasks: list[Name] = Field(default_factory=list, max_length=MAX_PLANNER_STEPS)
    """The tasks fragment steps may name; empty = any task."""


class MapConfig(_Strict):
    max_items: int = Field(default=1000, ge=1, le=MAX_MAP_ITEMS)
    # Instances in flight at once for this step (None = all of them).
    concurrency: int | None = Field(default=None, ge=1, le=MAX_MAP_ITEMS)


class SubWorkflowConfig(_Strict):
    workflow: DottedName
    # A definition revision to pin; None = the latest at the time the child starts.
    revision: int | None = Field(default=None, ge=1)
    detach: bool = False


class SleepConfig(_Strict):
    """Exactly one of ``duration``, ``until``, ``cron`` or ``until_input_path``."""

    duration: Duration | None = None
    until: str | None = None
    """dagnats: an RFC 3339 timestamp, or a path into the step's input (``"input.wake_at"``)."""
    cron: str | None = Field(default=None, max_length=256)
    """Go: a 5-field cron expression (UTC); wake at the next match after the step starts."""
    until_input_path: str | None = Field(default=None, min_length=1, max_length=256)
    """Go: a dot path into the run input to an RFC 3339 string or epoch milliseconds."""


class EventMatch(_Strict):
    """Go's match: the event's value at ``left`` equals ``right``'s value, as strings."""

    left: str = Field(min_length=1, max_length=256)
    """A dot path into the event payload."""
    op: str = "eq"
    """Only ``"eq"`` (checked by the rules, so the error names the step)."""
    right: str = Field(min_length=1, max_length=256)
    """``"input.<path>"`` (the run input) or ``"step.<id>.output.<path>"``."""


def _match_form(value: Any) -> Any:
    """Go's match object has exactly the keys left, right (and op); anything else is the
    dagnats map of event field -> input path."""
    value = drop_schema_key(value)
    if isinstance(value, dict) and {"left", "right"} <= value.keys() <= {"left", "op", "right"}:
        return EventMatch.model_validate(value)
    return value


Match = Annotated[EventMatch | dict[str, str], BeforeValidator(_match_form)]


class WaitForEventConfig(_Strict):
    event: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=255)
    match: Match = Field(default_factory=dict)
    """dagnats: event field path -> path into the step input (``"input.order_id"``) or the
    run input (``"run.input.order_id"``), all equal; or Go's ``{left, op, right}``."""
    timeout: Duration | None = None
    # How far back an event published just before the waiter registered still counts.
    lookback: Duration = 5_000_000_000


class ApprovalConfig(_Strict):
    timeout: Duration = DAY
    message: str | None = Field(default=None, max_length=4096)
    """dagnats: a note for the approver (Go's form is ``description``)."""
    subject: str | None = Field(default=None, min_length=1, max_length=255)
    """A core NATS subject the request is also published on (for bots)."""
    description: str | None = Field(default=None, max_length=4096)
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free data handed to the approver with the request."""


class RespondConfig(_Strict):
    """How a ``respond`` step answers the HTTP request that started its run."""

    status: int = Field(default=200, ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra response headers (at most 64)."""
    body_from: str | None = Field(default=None, min_length=1, max_length=256)
    """A dot path narrowing the body (the dependency's output, else the run input)."""
    content_type: str = Field(default="application/json", min_length=1, max_length=255)
    """``application/json`` sends the body as JSON; other types send text as it is."""

    @field_validator("headers")
    @classmethod
    def _few_headers(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 64:
            raise ValueError(f"at most 64 headers, got {len(v)}")
        return v


StepConfig = (
    AgentLoopConfig
    | PlannerConfig
    | MapConfig
    | SubWorkflowConfig
    | SleepConfig
    | WaitForEventConfig
    | ApprovalConfig
    | RespondConfig
)
CONFIG_MODELS: dict[str, type[_Strict] | None] = {
    "normal": None,
    "agent_loop": AgentLoopConfig,
    "agent": None,
    "planner": PlannerConfig,
    "map": MapConfig,
    "sub_workflow": SubWorkflowConfig,
    "sleep": SleepConfig,
    "wait_for_event": WaitForEventConfig,
    "approval": ApprovalConfig,
    "respond": RespondConfig,
}


class SkipIf(_Strict):
    """Go's condition: skip when ``steps[step_id].output[field] <op> value``."""

    step_id: str = Field(min_length=1, max_length=MAX_NAME_LEN)
    field: str = Field(min_length=1, max_length=256)
    op: str
    """One of ``== != < > <= >=`` (checked by the rules, so the error names the step)."""
    value: Any = None


class KeyedRateLimit(_Strict):
    """A token bucket per value of ``key`` in the step's resolved input (e.g. per tenant)."""

    key: str = Field(min_length=1, max_length=256)
    """A dot path into the step's input (``"tenant"`` or ``"input.tenant"``)."""
    limit: int = Field(ge=1, le=1_000_000)
    """Tokens the bucket holds; it refills ``limit`` tokens per ``period``."""
    period: Duration = 1_000_000_000
    units: int = Field(default=1, ge=1, le=1_000_000)
    """Tokens one task (each attempt, retries included) takes."""

    if TYPE_CHECKING:

        def __init__(
            self, *, key: str, limit: int, period: DurationLike = ..., units: int = ...
        ) -> None: ...
