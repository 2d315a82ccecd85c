"""dagnats: a DAG workflow engine for Python whose only infrastructure is NATS JetStream."""

from __future__ import annotations

from dagnats._version import __version__
from dagnats.client import Client, RunHandle, RunSummary, WorkflowInfo
from dagnats.client.redrive import CancelResult, DeadLetter, StartResult
from dagnats.dag.definition.builder import StepRef, Workflow
from dagnats.dag.definition.models import RetryPolicy, StepDef, WorkflowDef
from dagnats.dag.machine.state import RunState, StepState
from dagnats.errors import (
    ApiError,
    ApprovalError,
    DagnatsError,
    DefinitionError,
    InputValidationError,
    NatsUnavailableError,
    NonRetryableError,
    NotFoundError,
    RetryAfter,
    RunCancelledError,
    RunError,
    RunFailedError,
    RunNotFoundError,
    ServerError,
    TaskError,
    WorkflowNotFoundError,
)
from dagnats.protocol.durations import DurationError, DurationLike
from dagnats.protocol.events import Event
from dagnats.worker import Continue, Task, TaskContext, Worker

__all__ = [
    "ApiError",
    "ApprovalError",
    "CancelResult",
    "Client",
    "Continue",
    "DagnatsError",
    "DeadLetter",
    "DefinitionError",
    "DurationError",
    "DurationLike",
    "Event",
    "InputValidationError",
    "NatsUnavailableError",
    "NonRetryableError",
    "NotFoundError",
    "RetryAfter",
    "RetryPolicy",
    "RunCancelledError",
    "RunError",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunState",
    "RunSummary",
    "ServerError",
    "StartResult",
    "StepDef",
    "StepRef",
    "StepState",
    "Task",
    "TaskContext",
    "TaskError",
    "Worker",
    "Workflow",
    "WorkflowDef",
    "WorkflowInfo",
    "WorkflowNotFoundError",
    "__version__",
]
