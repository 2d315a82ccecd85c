"""Records of the control plane: scheduled runs, trigger state, held (debounced) starts.

Each lives in its own KV bucket (names in :mod:`dagnats.protocol.names`) and is changed by
compare-and-swap only, so several API services and trigger services can share them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from dagnats.protocol.model_config import WIRE_CONFIG

MAX_FIRES_KEPT = 50
"""A trigger's state keeps this many recent fires (``dagnats trigger history``)."""


class _Record(BaseModel):
    model_config = WIRE_CONFIG

    def encode(self) -> bytes:
        """The JSON bytes written to KV."""
        return self.model_dump_json(exclude_none=True).encode()


class ScheduledRun(_Record):
    """A run waiting for its ``run_at`` (bucket ``scheduled_runs``, key = run id).

    The start is prepared when the run is scheduled (definition revision pinned, input
    checked), so the timer that fires it has nothing left to decide.
    """

    run_id: str
    workflow: str
    revision: int
    input: Any = None
    run_at: datetime
    """When the run starts (UTC)."""
    created_at: datetime
    state: Literal["scheduled", "starting", "started", "cancelled"] = "scheduled"
    """``starting`` while the timer publishes the start; ``cancelled`` before it started."""


class TriggerFire(_Record):
    """One fire of a trigger, kept in its state for ``trigger history``."""

    ts: datetime
    kind: str
    """``cron``, ``manual``, ``subject``, ``webhook``, ``http`` (as in the envelope)."""
    run_id: str | None = None
    minute: int | None = None
    """The cron minute (unix minutes) this fire is for."""
    error: str | None = None


class TriggerState(_Record):
    """What the trigger services know about one trigger (bucket ``trigger_state``)."""

    last_minute: int | None = None
    """The last cron minute fired (unix minutes): backfill resumes after it."""
    fires: list[TriggerFire] = Field(default_factory=list)
    """The most recent fires, newest last (at most ``MAX_FIRES_KEPT``)."""

    def with_fire(self, fire: TriggerFire) -> TriggerState:
        fires = [*self.fires, fire][-MAX_FIRES_KEPT:]
        last = self.last_minute
        if fire.minute is not None:
            last = fire.minute if last is None else max(last, fire.minute)
        return TriggerState(last_minute=last, fires=fires)


class DebounceHold(_Record):
    """A debounced trigger's held start (bucket ``trigger_debounce``).

    Each new event replaces ``data`` and bumps ``generation``; the start happens when
    ``period`` passed since ``last_at`` or ``timeout`` since ``first_at``.
    """

    trigger_id: str
    key_hash: str
    kind: str
    data: Any = None
    source: str | None = None
    first_at: datetime
    last_at: datetime
    generation: int = 1
    period_ns: int
    timeout_ns: int | None = None

    def due_at(self) -> datetime:
        due = self.last_at + timedelta(microseconds=self.period_ns // 1000)
        if self.timeout_ns:
            cap = self.first_at + timedelta(microseconds=self.timeout_ns // 1000)
            due = min(due, cap)
        return due


class DebounceTimer(_Record):
    """The body of a debounce timer on ``debounce.<trigger id>`` (stream ``TIMERS``)."""

    trigger_id: str
    key_hash: str
    generation: int
    fire_at: datetime
