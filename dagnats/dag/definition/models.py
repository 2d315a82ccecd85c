"""Workflow definition models: the JSON format of a workflow, as pydantic models.

Field names follow the Go DagNats format (``../shared/seeds/004``) so its files load unchanged.
These models check shapes and per-field limits; graph rules (ids, dependencies, cycles,
handler steps) live in :mod:`dagnats.dag.definition.rules`, which is what callers use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from dagnats.protocol.durations import DAY, PYTHON_CONTEXT, Duration, DurationLike
from dagnats.protocol.names import MAX_NAME_LEN, NAME_PATTERN

StepType = Literal[
    "normal", "agent_loop", "map", "sub_workflow", "sleep", "wait_for_event", "approval", "respond"
]
STEP_TYPES: tuple[str, ...] = (
    "normal",
    "agent_loop",
    "map",
    "sub_workflow",
    "sleep",
    "wait_for_event",
    "approval",
    "respond",
)
# Step types whose work is done by a worker handler (they need a task name).
TASK_STEP_TYPES: frozenset[str] = frozenset({"normal", "agent_loop", "map"})

# Limits. Each is named in the error that enforces it.
MAX_STEPS = 1000
MAX_MAP_ITEMS = 10_000
MAX_SLEEP_NS = 365 * DAY
MAX_APPROVAL_TIMEOUT_NS = 7 * DAY
MAX_RETRY_ATTEMPTS = 100
MAX_ITERATIONS = 100_000
# max_task_concurrency and concurrency.max_runs: the holders of a limit are one KV value
# (a list of ids), which must stay under the 1 MiB message limit.
MAX_CONCURRENCY_LIMIT = 10_000
MAX_SUB_WORKFLOW_DEPTH = 8

Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=MAX_NAME_LEN)]


class _Strict(BaseModel):
    """Unknown fields are errors (named by validation), not silently dropped.

    Constructing a model in Python (``RetryPolicy(initial_delay=1)``) validates under
    :data:`~dagnats.protocol.durations.PYTHON_CONTEXT`, so a number is seconds; data given to
    ``model_validate`` keeps JSON's meaning (integer nanoseconds).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

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
    ``initial_delay * multiplier ** (n - 1)`` (exponential), capped by ``max_delay``.
    """

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


class MapConfig(_Strict):
    max_items: int = Field(default=1000, ge=1, le=MAX_MAP_ITEMS)
    # Instances in flight at once for this step (None = all of them).
    concurrency: int | None = Field(default=None, ge=1, le=MAX_MAP_ITEMS)


class SubWorkflowConfig(_Strict):
    workflow: Name
    # A definition revision to pin; None = the latest at the time the child starts.
    revision: int | None = Field(default=None, ge=1)
    detach: bool = False


class SleepConfig(_Strict):
    duration: Duration | None = None
    # An RFC 3339 timestamp, or a path into the step's input ("input.wake_at").
    until: str | None = None


class WaitForEventConfig(_Strict):
    event: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=255)
    # event field path -> path into the step's input or the run input
    # ("input.order_id" or "run.input.order_id"); all must be equal for a match.
    match: dict[str, str] = Field(default_factory=dict)
    timeout: Duration | None = None
    # How far back an event published just before the waiter registered still counts.
    lookback: Duration = 5_000_000_000


class ApprovalConfig(_Strict):
    timeout: Duration = DAY
    message: str | None = Field(default=None, max_length=4096)


class RespondConfig(_Strict):
    """How a ``respond`` step answers the HTTP request that started its run."""

    status: int = Field(default=200, ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra response headers (at most 64)."""
    body_from: str | None = Field(default=None, max_length=256, pattern=r"^[A-Za-z0-9_.-]+$")
    """A dot path narrowing the step's input to the body (``result.items.0``)."""
    content_type: str = Field(default="application/json", min_length=1, max_length=128)
    """``application/json`` sends the body as JSON; other types send text as it is."""

    @field_validator("headers")
    @classmethod
    def _few_headers(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 64:
            raise ValueError(f"at most 64 headers, got {len(v)}")
        return v


StepConfig = (
    AgentLoopConfig
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


class StepDef(_Strict):
    id: Name
    task: Name | None = None
    type: StepType = "normal"
    depends_on: list[str] = Field(default_factory=list)
    timeout: Duration | None = None
    retry: RetryPolicy | None = None
    # A condition over the step's input; true -> the step is skipped (see conditions.py).
    skip_if: str | None = Field(default=None, max_length=1024)
    on_failure: str | None = None
    compensate: str | None = None
    worker_group: Name | None = None
    rate_limit: RateLimit | None = None
    # Capped so that the slot set (one holder id per slot) fits a 1 MiB KV value.
    max_task_concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Validated against CONFIG_MODELS[type] by the before-validator below.
    config: Annotated[StepConfig, SkipValidation] | None = None

    @model_validator(mode="before")
    @classmethod
    def _typed_config(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
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
    # Capped like max_task_concurrency: the admitted runs are one KV value.
    max_runs: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    max_steps: int | None = Field(default=None, ge=1, le=100_000)


class CancelOn(_Strict):
    """Cancel the run when an external event with matching fields is published."""

    event: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=255)
    match: dict[str, str] = Field(default_factory=dict)


class WorkflowDef(_Strict):
    schema_: str | None = Field(default=None, alias="$schema")
    name: Name
    version: str = Field(default="1.0", max_length=64)
    description: str | None = Field(default=None, max_length=4096)
    steps: list[StepDef]
    timeout: Duration | None = None
    default_retry: RetryPolicy | None = None
    concurrency: Concurrency | None = None
    # A path into the run input whose value dedups starts ("input.order_id").
    idempotency_key: str | None = Field(default=None, max_length=256)
    input_schema: dict[str, Any] | None = None
    cancel_on: list[CancelOn] = Field(default_factory=list, max_length=16)
    priority: int = Field(default=0, ge=0, le=9)
    sticky: bool = False
    singleton: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    def step(self, step_id: str) -> StepDef:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)
