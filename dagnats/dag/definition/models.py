"""Workflow definition models: the JSON format of a workflow, as pydantic models.

Field names follow the Go DagNats format (``../shared/DAGNATS-FORMAT.md``) so its files load
unchanged; Go's spellings of "nothing" (``"timeout": 0``, ``"task": ""``, nulls) are read as
absent fields by :mod:`dagnats.dag.definition.spellings`. These models check shapes and
per-field limits; graph rules (ids, dependencies, cycles, handler steps) live in
:mod:`dagnats.dag.definition.rules`, which is what callers use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from dagnats.dag.definition.spellings import drop_schema_key, go_retry, go_step, go_workflow
from dagnats.protocol.durations import DAY, PYTHON_CONTEXT, Duration, DurationLike, LongDuration
from dagnats.protocol.names import DOTTED_NAME_PATTERN, MAX_NAME_LEN, NAME_PATTERN

StepType = Literal[
    "normal",
    "agent_loop",
    "agent",
    "map",
    "planner",
    "sub_workflow",
    "sleep",
    "wait_for_event",
    "approval",
    "respond",
]
STEP_TYPES: tuple[str, ...] = (
    "normal",
    "agent_loop",
    "agent",
    "planner",
    "map",
    "sub_workflow",
    "sleep",
    "wait_for_event",
    "approval",
    "respond",
)
# Step types whose work is done by a worker handler (they need a task name).
TASK_STEP_TYPES: frozenset[str] = frozenset({"normal", "agent_loop", "agent", "map", "planner"})

# Limits. Each is named in the error that enforces it.
MAX_STEPS = 1000
MAX_MAP_ITEMS = 10_000
MAX_SLEEP_NS = 365 * DAY
MAX_APPROVAL_TIMEOUT_NS = 7 * DAY
MAX_RETRY_ATTEMPTS = 100_000
MAX_ITERATIONS = 100_000
# max_task_concurrency and concurrency.max_runs: the holders of a limit are one KV value
# (a list of ids), which must stay under the 1 MiB message limit.
MAX_CONCURRENCY_LIMIT = 10_000
MAX_SUB_WORKFLOW_DEPTH = 8
MAX_RUN_STEPS = 1000  # concurrency.max_steps
MAX_PRIORITY_OFFSET_S = 600
MAX_PRIORITY_RULES = 20
MAX_PLANNER_STEPS = 100  # steps one planner may add
MAX_PLANNER_DEPTH = 10
MAX_DYNAMIC_STEPS = 500  # steps all planners of one run may add together
MAX_CAPABILITIES = 32
MAX_CANCEL_ON = 5  # Go's limit: a definition dagnats writes in the Go form must load there

Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=MAX_NAME_LEN)]
# Workflow names and step ids may be dotted, as in Go ("order.v2"); tasks, groups and
# capabilities stay single tokens (a task is its worker's subject token).
DottedName = Annotated[
    str, Field(pattern=DOTTED_NAME_PATTERN, min_length=1, max_length=MAX_NAME_LEN)
]


class _Strict(BaseModel):
    """Unknown fields are errors (named by validation), not silently dropped.

    Constructing a model in Python (``RetryPolicy(initial_delay=1)``) validates under
    :data:`~dagnats.protocol.durations.PYTHON_CONTEXT`, so a number is seconds; data given to
    ``model_validate`` keeps JSON's meaning (integer nanoseconds).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    # Only the workflow keeps its "$schema" (a field); anywhere else it is an editor's hint.
    _keeps_schema: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _schema_hint(cls, data: Any) -> Any:
        return data if cls._keeps_schema else drop_schema_key(data)

    def __init__(self, /, **data: Any) -> None:
        self.__pydantic_validator__.validate_python(
            data, self_instance=self, context=PYTHON_CONTEXT
        )

    # Pydantic's own mark for "this __init__ is the base one" (BaseSettings uses it too):
    # without it pydantic would route model_validate through this __init__ as well, and
    # data would get Python's meaning (numbers as seconds) instead of JSON's.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class RetryPolicy(_Strict):
    """How a failed step is retried.

    ``max_attempts`` counts retries after the first failure (0 = never retry). The n-th
    retry (1-based) waits ``initial_delay`` (fixed), ``initial_delay * n`` (linear) or
    ``initial_delay * multiplier ** (n - 1)`` (exponential), capped by ``max_delay``, then
    clamped to [1 ms, 1 h]. ``max_delay`` absent or zero means no cap (Go's meaning).
    """

    @model_validator(mode="before")
    @classmethod
    def _go_zero(cls, data: Any) -> Any:
        return go_retry(data)

    max_attempts: int = Field(default=0, ge=0, le=MAX_RETRY_ATTEMPTS)
    strategy: Literal["fixed", "linear", "exponential"] = "fixed"
    initial_delay: Duration = 1_000_000_000
    max_delay: Duration | None = None
    multiplier: float = Field(default=2.0, ge=1.0, le=100.0)

    if TYPE_CHECKING:
        # What a caller may pass (durations as DurationLike), spelled out so that type
        # checkers without the pydantic plugin (plain mypy, Pylance) accept "1s"; the fields
        # above stay int nanoseconds. tests/unit/test_durations_rule.py keeps the two in step.
        def __init__(
            self,
            *,
            max_attempts: int = ...,
            strategy: Literal["fixed", "linear", "exponential"] = ...,
            initial_delay: DurationLike = ...,
            max_delay: DurationLike | None = ...,
            multiplier: float = ...,
        ) -> None: ...


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


class RateLimit(_Strict):
    """Token bucket per task type: ``limit`` starts per ``period``."""

    limit: int = Field(ge=1, le=1_000_000)
    period: Duration = 1_000_000_000

    if TYPE_CHECKING:
        # As RetryPolicy: a typed signature for type checkers without the pydantic plugin.
        def __init__(self, *, limit: int, period: DurationLike = ...) -> None: ...


# Go's encoder writes "task": "" on engine steps and "depends_on": null (both read as absent),
# so the published JSON Schema admits them too: editors must not flag a Go-serialised file.
_TASK_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LEN},
        {"const": ""},
        {"type": "null"},
    ],
    "description": 'The handler\'s task (worker steps; default: the step id). Go writes "" '
    "on engine-run steps.",
}
_DEPENDS_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
    "description": "Step ids this step waits for (null = none, as Go writes it).",
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


class StepDef(_Strict):
    id: DottedName
    task: Annotated[Name | None, WithJsonSchema(_TASK_SCHEMA)] = None
    """The handler's task; a worker step without one gets its id (set when loaded)."""
    type: StepType = "normal"
    depends_on: Annotated[list[str], WithJsonSchema(_DEPENDS_SCHEMA)] = Field(default_factory=list)
    timeout: Duration | None = None
    retries: int | None = Field(default=None, ge=0, le=MAX_RETRY_ATTEMPTS)
    """Go's legacy retry count: a fixed 5 s policy, used when no retry policy applies."""
    retry: RetryPolicy | None = None
    skip_if: SkipIf | str | None = Field(default=None, union_mode="left_to_right")
    """True -> the step is skipped: an expression (see conditions.py) or Go's object form."""
    on_failure: str | None = None
    compensate: str | None = None
    worker_group: Name | None = None
    rate_limit: RateLimit | None = None
    # Capped so that the slot set (one holder id per slot) fits a 1 MiB KV value.
    max_task_concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    keyed_rate_limit: KeyedRateLimit | None = None
    required_capabilities: list[Name] = Field(default_factory=list, max_length=MAX_CAPABILITIES)
    """What the handler may use; ``"control-plane"`` opens ``ctx.control``."""
    singleton: bool = False
    """Go's step ``singleton``: unused there too; accepted and ignored."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Delivered to the handler as ``ctx.metadata``; ``metadata.role`` on an ``agent`` step."""
    # Validated against CONFIG_MODELS[type] by the before-validator below.
    config: Annotated[StepConfig, SkipValidation] | None = None

    @model_validator(mode="before")
    @classmethod
    def _typed_config(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        data = go_step(data, TASK_STEP_TYPES)
        step_type = data.get("type", "normal")
        raw = data.get("config")
        model = CONFIG_MODELS.get(step_type) if isinstance(step_type, str) else None
        if model is None or raw is None or isinstance(raw, model):
            return data
        out = dict(data)
        try:
            # The same context: a config's numbers mean what the step's numbers mean.
            out["config"] = model.model_validate(raw, context=info.context)
        except ValidationError as exc:
            # Re-raise with "config" in each location: otherwise an error inside the config
            # reads as if it were about the step itself (e.g. "unknown field 'colour'").
            details: list[InitErrorDetails] = [
                {
                    "type": err["type"],
                    "loc": ("config", *err["loc"]),
                    "input": err["input"],
                    "ctx": err.get("ctx", {}),
                }
                for err in exc.errors()
            ]
            raise ValidationError.from_exception_data(exc.title, details) from None
        return out

    @property
    def task_name(self) -> str:
        """The task a worker serves for this step (defaults to the step id)."""
        return self.task or self.id


class Concurrency(_Strict):
    @model_validator(mode="before")
    @classmethod
    def _go_zero(cls, data: Any) -> Any:
        # Go: 0 = unlimited, which is dagnats' "absent".
        if isinstance(data, dict) and data.get("max_runs") == 0:
            return {k: v for k, v in data.items() if k != "max_runs"}
        return data

    # Capped like max_task_concurrency: the admitted runs are one KV value.
    max_runs: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    max_steps: int | None = Field(default=None, ge=0, le=MAX_RUN_STEPS)
    """Worker steps (and map instances) running at once inside one run; 0 = unlimited."""


class Priority(_Strict):
    """Orders the pending backlog: the run input's value at ``key`` picks an offset."""

    key: str = Field(min_length=1, max_length=256)
    """A dot path into the run input (``"tier"`` or ``"input.tier"``)."""
    rules: dict[str, int]
    """Value (as a string) -> offset in seconds added to the arrival time; earlier = sooner.
    1..20 of them (checked by the rules, which name the limit)."""
    default_offset: int = Field(default=0, ge=-MAX_PRIORITY_OFFSET_S, le=MAX_PRIORITY_OFFSET_S)


class Singleton(_Strict):
    """One active run per workflow, or per value of ``key`` in the run input."""

    mode: Literal["skip", "cancel"] = "skip"
    """``skip``: a new start is refused and answered with the active run; ``cancel``: the
    active run is cancelled and the new one starts."""
    key: str | None = Field(default=None, max_length=256)


class CancelOn(_Strict):
    """Cancel the run when an external event with matching fields is published."""

    event: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=255)
    match: Match = Field(default_factory=dict)
    """As ``wait_for_event``'s; ``input.`` paths are the run input."""
    timeout: Duration | None = None
    """Go stores it and never uses it; so does dagnats (kept for the round trip)."""


class WorkflowDef(_Strict):
    _keeps_schema: ClassVar[bool] = True
    schema_: str | None = Field(default=None, alias="$schema")
    name: DottedName
    version: str = Field(default="1.0", max_length=256)
    description: str | None = Field(default=None, max_length=4096)
    steps: list[StepDef]
    timeout: Duration | None = None
    default_retry: RetryPolicy | None = None
    concurrency: Concurrency | None = None
    # A path into the run input whose value dedups starts ("input.order_id").
    idempotency_key: str | None = Field(default=None, max_length=256)
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    """Documents the run's output (kept and served; not enforced, as in Go)."""
    aux_steps: dict[str, bool] | None = None
    """Go's list of handler steps: checked against the inference, then dropped."""
    cancel_on: list[CancelOn] = Field(default_factory=list, max_length=MAX_CANCEL_ON)
    priority: Priority | None = None
    sticky: Literal["", "soft", "hard"] = ""
    """Worker affinity for a run's worker steps (see docs/workflows.md)."""
    singleton: Singleton | None = None
    retention: LongDuration | None = None
    """How long a finished run of this workflow is kept (``"7d"``): then the engine removes
    it, as ``--retention`` does for every workflow; this one wins over it either way."""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _go_zero(cls, data: Any) -> Any:
        return go_workflow(data)

    @field_validator("retention")
    @classmethod
    def _positive_retention(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError("retention must be positive (a run is kept that long once finished)")
        return value

    def step(self, step_id: str) -> StepDef:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)
