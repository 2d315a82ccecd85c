"""Message bodies on NATS that are not history events: one model per kind, for writer and reader.

Writers serialise with :func:`encode` (``None`` fields left out, so optional fields appear
only when they mean something); readers parse with ``Model.model_validate_json``. Unknown
fields are ignored, so an older reader accepts a newer writer's message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from dagnats.protocol.model_config import WIRE_CONFIG


class _Message(BaseModel):
    model_config = WIRE_CONFIG

    def encode(self) -> bytes:
        """The JSON bytes written to NATS."""
        return self.model_dump_json(exclude_none=True).encode()


class TaskMessage(_Message):
    """The body of a message on ``task.<task>[.<group>]``."""

    run_id: str
    workflow: str
    step_id: str
    task: str
    attempt: int
    iteration: int = 0
    item: int | None = None
    input: Any = None
    timeout_ns: int | None = None
    idempotency_key: str
    dedup_id: str
    metadata: dict[str, Any] | None = None
    """The step's ``metadata`` (``ctx.metadata``)."""
    capabilities: list[str] | None = None
    """The step's ``required_capabilities`` (``"control-plane"`` opens ``ctx.control``)."""
    budget_warning: bool | None = None
    """An agent-loop iteration at or past ``budget_warn_at``."""
    budget_final: bool | None = None
    """An agent-loop iteration at ``budget_force_at``: a ``Continue`` will be refused."""
    sticky: str | None = None
    """``soft`` or ``hard``: the run's worker steps go to the worker bound to the run."""
    control_root: str | None = None
    """For a handler with the control plane: the root run whose budget its operations use."""
    fallback: bool | None = None
    """A soft-sticky task re-sent to every worker because its bound worker did not start
    it in time: whoever takes it runs it."""
    run_retry: int | None = None
    """How many times the run was retried when this task was sent (absent: never). A
    worker that saw the run end drops its tasks unless they come from a later retry."""


class DeferredTask(BaseModel):
    """A task message held back by its rate limit or concurrency limit (in a timer)."""

    model_config = WIRE_CONFIG

    subject: str
    """The task subject to publish on once the limits allow."""
    body: str
    """The task message, as JSON text."""
    task_name: str
    """The task type whose limits apply."""
    holder: str
    """The task's dedup id: holds its concurrency slot, and dedups the late publish."""
    rate_limit: list[int] | None = None
    """``[limit, period_ns]`` of the task's rate limit."""
    max_task_concurrency: int | None = None
    """At most this many instances of the task type at once."""
    keyed_rate: list[Any] | None = None
    """``[bucket token, limit, period_ns, units]`` of the step's keyed rate limit."""

    def limits(self) -> dict[str, Any]:
        """What ``check_limits`` reads."""
        return self.model_dump(exclude={"subject", "body"})


class TimerMessage(_Message):
    """The body of a message on ``timer.<kind>.<run_id>`` (stream ``TIMERS``)."""

    run_id: str
    step_id: str | None = None
    """The step the timer is about; none for a run's own timers (``workflow_timeout``)."""
    kind: str
    """``retry``, ``sleep``, ``step_timeout`` ... or ``dispatch`` for a deferred task."""
    fire_at: datetime
    """When the timer is due (UTC); the timer service naks it until then."""
    data: dict[str, Any] = {}
    """Copied into the ``timer.fired`` event: ``kind`` plus attempt, iteration, item."""
    dedup_id: str
    """The timer's own dedup id; ``fired.<dedup_id>`` dedups the ``timer.fired`` event."""
    task: DeferredTask | None = None
    """For ``kind == "dispatch"``: the task to publish when due."""


class EventWaiter(_Message):
    """A ``wait_for_event`` step waiting for an event (bucket ``event_waiters``)."""

    run_id: str
    step_id: str
    event: str
    """The event name (``event.<name>``) the step waits for."""
    match: dict[str, Any] = {}
    """Payload fields and the values they must equal, resolved when the wait began."""
    lookback_ns: int = 0
    """Events published this long before registration also match."""
    registered_at: datetime | None = None
    """When the engine registered the waiter (the start of the look-back)."""
    as_text: bool = False
    """Go's match form: the payload value and ``match`` value are compared as strings."""


class ApprovalRecord(_Message):
    """One approval token's record (bucket ``approval_tokens``, key = the token)."""

    run_id: str
    step_id: str
    expires_at: datetime
    """After this the token is refused (the step's approval timeout)."""
    state: Literal["open", "used"] | str = "open"
    """``open`` until a decision consumes it, then ``used``."""
    decision: Literal["approved", "rejected"] | None = None
    """The decision that used the token."""
    data: Any = None
    """The approver's data (an approval)."""
    reason: Any = None
    """The rejection's reason (a string, as the API sends it)."""

    def decided(self, decision: dict[str, Any]) -> ApprovalRecord:
        """This record, used by ``decision`` (``{"decision": ..., "data"|"reason": ...}``)."""
        return self.model_validate({**self.model_dump(), **decision, "state": "used"})


class DeadLetterMessage(_Message):
    """A message on ``dead.<run_id>.<step_id>`` (stream ``DEAD_LETTERS``).

    A task whose step failed after its last attempt, or (step ``engine``) a history event
    the engine could not apply.
    """

    run_id: str | None = None
    step_id: str | None = None
    item: int | None = None
    """The map instance, for a map step's task."""
    task: str | None = None
    """The task type."""
    input: Any = None
    """The task's input (possibly a payload reference)."""
    error: Any = None
    """The last error: ``{"message", "type", ...}`` for a task, a message for the engine."""
    attempts: int | None = None
    event: dict[str, Any] | None = None
    """The history event the engine gave up on (engine dead letters)."""
    ts: datetime | None = None
    """When the task was dead-lettered."""
