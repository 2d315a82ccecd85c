"""The HTTP API's request and response bodies, as pydantic models: the OpenAPI document is
generated from these, and FastAPI checks every response against them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dagnats.dag.machine.state import RunState
from dagnats.protocol.names import DOTTED_NAME_PATTERN, MAX_NAME_LEN, NAME_PATTERN
from dagnats.server.operations import MAX_REVISION


class ErrorDetail(BaseModel):
    kind: str
    """The error's class name (``RunNotFoundError``, ``DefinitionError``, ``ApiError``...);
    the Python client raises the same class again."""
    message: str
    """What went wrong, naming the field, step or limit."""


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"kind", "message"}}``."""

    error: ErrorDetail


class Health(BaseModel):
    nats: bool
    """The NATS connection is up."""
    jetstream: bool
    """JetStream answered an account-info request within 2 s."""
    status: Literal["ok", "down"]


class Ready(BaseModel):
    ready: bool
    """Every part of ``serve`` has started (and none is stopping)."""


class StartRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(pattern=DOTTED_NAME_PATTERN, max_length=MAX_NAME_LEN)
    """Name of a registered workflow."""
    input: Any = None
    """The run input (any JSON), checked against the workflow's ``input_schema``."""
    run_id: str | None = Field(None, pattern=NAME_PATTERN, max_length=MAX_NAME_LEN)
    """Choose the run id (1-128 of ``[A-Za-z0-9_-]``); a new one by default."""
    idempotency_key: str | None = None
    """A second start with the same key returns the first run (``duplicate: true``)."""
    revision: int | None = Field(None, ge=1, le=MAX_REVISION)
    """Run this revision of the workflow instead of the latest."""
    run_at: str | None = None
    """RFC 3339 time: more than a second ahead, the run is stored as ``scheduled`` and
    starts then (durably); a past or unparsable time is a 400."""


class ReasonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = None
    """Recorded with the cancellation or rejection."""


class WorkflowRegistered(BaseModel):
    name: str
    version: str
    revision: int
    """KV revision of the stored definition (unchanged when the same definition is sent
    again)."""


class WorkflowSummary(WorkflowRegistered):
    steps: int
    """Number of top-level steps."""
    description: str | None = None


class WorkflowDetail(BaseModel):
    revision: int
    definition: dict[str, Any]
    """The definition as registered (the workflow file format)."""


class Deleted(BaseModel):
    deleted: str
    """The name or run id that was deleted."""


class RunStarted(BaseModel):
    run_id: str
    workflow: str
    revision: int
    duplicate: bool
    """True when an idempotency key matched an earlier run: that run is returned."""
    status: str | None = None
    """``scheduled`` for a run started with ``run_at`` ahead."""
    run_at: datetime | None = None
    """When a scheduled run starts."""


class RunListItem(BaseModel):
    run_id: str
    workflow: str
    status: str
    created_at: datetime | None = None
    finished_at: datetime | None = None
    run_at: datetime | None = None
    """For a scheduled run: when it starts."""


class RunEvent(BaseModel):
    """One event of a run's history."""

    type: str
    run_id: str
    step_id: str | None = None
    attempt: int | None = None
    iteration: int | None = None
    item: int | None = None
    ts: datetime
    data: Any = None
    seq: int
    """Sequence of the event in the history stream."""


class RunCancelled(BaseModel):
    run_id: str
    status: str
    """The run's status when the request arrived."""
    cancelled: bool
    """False when the run had already ended."""


class SignalSent(BaseModel):
    run_id: str
    signal: str


class EventPublished(BaseModel):
    name: str
    seq: int
    """Sequence of the event in the events stream."""


class ApprovalDecided(BaseModel):
    run_id: str
    step_id: str
    approved: bool


__all__ = [
    "ApprovalDecided",
    "Deleted",
    "ErrorBody",
    "ErrorDetail",
    "EventPublished",
    "Health",
    "Ready",
    "ReasonRequest",
    "RunCancelled",
    "RunEvent",
    "RunListItem",
    "RunStarted",
    "RunState",
    "SignalSent",
    "StartRunRequest",
    "WorkflowDetail",
    "WorkflowRegistered",
    "WorkflowSummary",
]
