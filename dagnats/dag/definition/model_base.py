"""The base of the workflow definition models: step types, limits, names and the strict model
base. Re-exported by :mod:`dagnats.dag.definition.models`, where callers import them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from dagnats.dag.definition.spellings import drop_schema_key
from dagnats.protocol.durations import DAY, PYTHON_CONTEXT
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
