"""Bodies of the worker bridge (``/v1``): what an HTTP worker sends and receives."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dagnats.protocol.names import MAX_NAME_LEN, NAME_PATTERN

MAX_BINDINGS = 100
MAX_CONCURRENCY = 100
MAX_POLL_TASKS = 100
MAX_POLL_WAIT_S = 30.0
MAX_ERROR_CHARS = 8192
MAX_RETRY_AFTER_S = 365 * 86400.0

Name = Field(pattern=NAME_PATTERN, max_length=MAX_NAME_LEN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskBinding(_Strict):
    task: str = Name
    """Task name, as in a workflow step's ``task``."""
    group: str | None = Field(None, pattern=NAME_PATTERN, max_length=MAX_NAME_LEN)
    """Worker group (``task.<task>.<group>``); none: the ungrouped subject."""


class ConnectRequest(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_LEN)
    """A name for the worker (shown in ``step.started``)."""
    tasks: list[TaskBinding] = Field(min_length=1, max_length=MAX_BINDINGS)
    """The tasks it serves: each binds to the same durable consumer Python workers use."""
    concurrency: int = Field(10, ge=1, le=MAX_CONCURRENCY)
    """At most this many tasks of each binding held by this worker at once."""
    lease_s: float = Field(30.0, ge=5.0, le=300.0)
    """The worker is dropped (its tasks given back) after this long without a call."""


class Connected(BaseModel):
    worker_id: str
    """Use in ``/v1/workers/{worker_id}/poll``; secret enough to stand for the worker."""
    lease_s: float
    consumers: list[str]
    """The durable consumers the worker pulls from."""


class PollRequest(_Strict):
    max_tasks: int = Field(1, ge=1, le=MAX_POLL_TASKS)
    """At most this many tasks in the answer."""
    wait_s: float = Field(10.0, ge=0.0, le=MAX_POLL_WAIT_S)
    """Long poll: wait up to this long for a first task (0: answer at once)."""


class TaskOut(BaseModel):
    task_id: str
    """Use in ``/v1/tasks/{task_id}/...`` to resolve it."""
    task: str
    run_id: str
    workflow: str
    step_id: str
    attempt: int
    iteration: int
    item: int | None = None
    input: Any = None
    idempotency_key: str
    """Stable across retries and redeliveries of this step: for external side effects."""
    timeout_s: float | None = None
    """The step's timeout: past it the bridge fails the step (TimeoutError, retryable)."""
    delivery: int
    """How many times JetStream has delivered this task (1 the first time)."""


class PollResponse(BaseModel):
    tasks: list[TaskOut]


class CompleteRequest(_Strict):
    output: Any = None
    """The step's output (any JSON)."""


class FailRequest(_Strict):
    error: str = Field(min_length=1, max_length=MAX_ERROR_CHARS)
    """What went wrong."""
    error_type: str = Field("Error", min_length=1, max_length=MAX_NAME_LEN)
    """A failure type; ``on_failure``/retry rules and the run's error name it."""
    retryable: bool = True
    """False: fail the step for good (like ``NonRetryableError``)."""
    retry_after_s: float | None = Field(None, ge=0.0, le=MAX_RETRY_AFTER_S)
    """Retry no sooner than this (like ``RetryAfter``)."""


class ContinueRequest(_Strict):
    value: Any = None
    """An agent loop's value for its next iteration."""


class ValueRequest(_Strict):
    value: Any = None
    """A checkpoint (any JSON)."""


class StreamRequest(_Strict):
    data: Any = None
    """A chunk of real-time output (at most 256 KiB as JSON)."""


class SignalRequest(_Strict):
    run_id: str = Name
    """The run to signal (any run, not only this task's)."""
    name: str = Name
    data: Any = None


class Resolved(BaseModel):
    task_id: str
    outcome: Literal["completed", "failed", "continued"]


class Done(BaseModel):
    ok: bool = True


class Checkpoint(BaseModel):
    value: Any = None
    """The last checkpoint of the step (null: none)."""


class Disconnected(BaseModel):
    worker_id: str
    returned: int
    """Tasks the worker held or had queued, given back to the durable consumers."""
