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
    Field,
    SkipValidation,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from dagnats.dag.definition.model_base import (
    MAX_APPROVAL_TIMEOUT_NS,
    MAX_CANCEL_ON,
    MAX_CAPABILITIES,
    MAX_CONCURRENCY_LIMIT,
    MAX_DYNAMIC_STEPS,
    MAX_ITERATIONS,
    MAX_MAP_ITEMS,
    MAX_PLANNER_DEPTH,
    MAX_PLANNER_STEPS,
    MAX_PRIORITY_OFFSET_S,
    MAX_PRIORITY_RULES,
    MAX_RETRY_ATTEMPTS,
    MAX_RUN_STEPS,
    MAX_SLEEP_NS,
    MAX_STEPS,
    MAX_SUB_WORKFLOW_DEPTH,
    STEP_TYPES,
    TASK_STEP_TYPES,
    DottedName,
    Name,
    StepType,
    _Strict,
)
from dagnats.dag.definition.spellings import go_retry, go_step, go_workflow
from dagnats.dag.definition.step_configs import (
    CONFIG_MODELS,
    AgentLoopConfig,
    ApprovalConfig,
    EventMatch,
    KeyedRateLimit,
    MapConfig,
    Match,
    PlannerConfig,
    RespondConfig,
    SkipIf,
    SleepConfig,
    StepConfig,
    SubWorkflowConfig,
    WaitForEventConfig,
)
from dagnats.protocol.durations import Duration, DurationLike, LongDuration
from dagnats.protocol.names import MAX_NAME_LEN, NAME_PATTERN


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


__all__ = [
    "CONFIG_MODELS",
    "MAX_APPROVAL_TIMEOUT_NS",
    "MAX_CANCEL_ON",
    "MAX_CAPABILITIES",
    "MAX_CONCURRENCY_LIMIT",
    "MAX_DYNAMIC_STEPS",
    "MAX_ITERATIONS",
    "MAX_MAP_ITEMS",
    "MAX_PLANNER_DEPTH",
    "MAX_PLANNER_STEPS",
    "MAX_PRIORITY_OFFSET_S",
    "MAX_PRIORITY_RULES",
    "MAX_RETRY_ATTEMPTS",
    "MAX_RUN_STEPS",
    "MAX_SLEEP_NS",
    "MAX_STEPS",
    "MAX_SUB_WORKFLOW_DEPTH",
    "STEP_TYPES",
    "TASK_STEP_TYPES",
    "AgentLoopConfig",
    "ApprovalConfig",
    "CancelOn",
    "Concurrency",
    "DottedName",
    "EventMatch",
    "KeyedRateLimit",
    "MapConfig",
    "Match",
    "Name",
    "PlannerConfig",
    "Priority",
    "RateLimit",
    "RespondConfig",
    "RetryPolicy",
    "Singleton",
    "SkipIf",
    "SleepConfig",
    "StepConfig",
    "StepDef",
    "StepType",
    "SubWorkflowConfig",
    "WaitForEventConfig",
    "WorkflowDef",
]
