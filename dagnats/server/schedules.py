"""Scheduled runs on the API side: store, list, show and cancel runs that start later.

``start(..., run_at=)`` more than a second ahead stores a
:class:`~dagnats.protocol.control.ScheduledRun` (revision pinned, input checked now) and a
timer on ``TIMERS``; the engine's timer service starts the run when it is due
(``engine/scheduled.py``). Until then the run has no history: its status is ``scheduled``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.kvscan import get_entry, list_keys
from dagnats._nats.publish import msg_id
from dagnats._nats.types import KeyValue, NatsClient
from dagnats.dag.machine.state import RunState
from dagnats.errors import ApiError
from dagnats.protocol import clock, dedup
from dagnats.protocol.control import ScheduledRun
from dagnats.protocol.limits import check_name
from dagnats.protocol.messages import TimerMessage

log = logging.getLogger(__name__)

SCHEDULED_KIND = "scheduled"
MAX_AHEAD = timedelta(days=365)
START_NOW_WITHIN = timedelta(seconds=1)
MAX_LIST = 1000
MAX_CAS_TRIES = 5


def parse_run_at(value: Any, *, now: datetime | None = None) -> datetime | None:
    """``run_at`` as an aware UTC datetime; ``None`` when it is due within a second (start
    now). A past, unparsable or naive time, or one more than a year ahead, is a 400."""
    now = now or clock.now()
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(
                f"run_at {value!r} is not an RFC 3339 time (e.g. 2027-01-01T09:00:00Z)", code=400
            ) from None
    else:
        raise ApiError(f"run_at must be an RFC 3339 string, got {type(value).__name__}", code=400)
    if at.tzinfo is None:
        raise ApiError(f"run_at {value!r} has no time zone offset (add Z or +01:00)", code=400)
    at = at.astimezone(UTC)
    if at < now - START_NOW_WITHIN:
        raise ApiError(f"run_at {at.isoformat()} is in the past (now {now.isoformat()})", code=400)
    if at > now + MAX_AHEAD:
        raise ApiError(f"run_at {at.isoformat()} is more than 365 days ahead", code=400)
    return None if at <= now + START_NOW_WITHIN else at


class Schedules:
    """The ``scheduled_runs`` bucket and the timers that start its runs."""

    def __init__(self, nc: NatsClient, kv: KeyValue) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.kv = kv

    async def schedule(
        self, run_id: str, workflow: str, revision: int, run_input: Any, run_at: datetime
    ) -> dict[str, Any]:
        record = ScheduledRun(
            run_id=run_id,
            workflow=workflow,
            revision=revision,
            input=run_input,
            run_at=run_at,
            created_at=clock.now(),
        )
        if await cas.write(self.kv, run_id, record.encode(), 0) is None:
            raise ApiError(f"run '{run_id}' is already scheduled", code=409)
        timer = TimerMessage(
            run_id=run_id,
            kind=SCHEDULED_KIND,
            fire_at=run_at,
            dedup_id=dedup.scheduled_timer_id(run_id),
        )
        try:
            await self.js.publish(
                protocol.timer_subject(SCHEDULED_KIND, run_id),
                timer.encode(),
                headers=msg_id(timer.dedup_id),
            )
        except Exception:
            # Without its timer the record would wait forever: nothing half-created.
            await self.kv.delete(run_id)
            raise
        return {
            "run_id": run_id,
            "workflow": workflow,
            "revision": revision,
            "duplicate": False,
            "status": "scheduled",
            "run_at": run_at.isoformat(),
        }

    async def get(self, run_id: str) -> ScheduledRun | None:
        check_name(run_id, "run_id")  # a KV key: checked before the lookup (else a 500)
        entry = await get_entry(self.kv, run_id)
        if entry is None or not entry.value:
            return None
        return ScheduledRun.model_validate_json(entry.value)

    def as_state(self, record: ScheduledRun) -> dict[str, Any]:
        """A RunState-shaped answer for ``get_run`` of a run that has not started."""
        status = "cancelled" if record.state == "cancelled" else "scheduled"
        return {
            "run_id": record.run_id,
            "workflow": record.workflow,
            "revision": record.revision,
            "status": status,
            "input": record.input,
            "created_at": record.created_at.isoformat(),
            "scheduled_at": record.run_at.isoformat(),
            "steps": {},
        }

    async def list(self, workflow: str | None, limit: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key in sorted(await list_keys(self.kv))[: MAX_LIST * 10]:
            record = await self.get(key)
            if record is None or record.state != "scheduled":
                continue
            if workflow and record.workflow != workflow:
                continue
            out.append(
                {
                    "run_id": record.run_id,
                    "workflow": record.workflow,
                    "status": "scheduled",
                    "created_at": record.created_at.isoformat(),
                    "run_at": record.run_at.isoformat(),
                }
            )
        out.sort(key=lambda r: r["run_at"])
        return out[: max(1, min(limit, MAX_LIST))]

    async def cancel(self, run_id: str) -> bool | None:
        """Cancel a run that has not started: True; ``None`` when it is not (or no longer)
        only scheduled (it started, or was never scheduled): cancel it as a run."""
        for _ in range(MAX_CAS_TRIES):
            raw, revision = await cas.read(self.kv, run_id)
            if raw is None:
                return None
            record = ScheduledRun.model_validate_json(raw)
            if record.state == "cancelled":
                return False
            if record.state != "scheduled":
                return None
            cancelled = record.model_copy(update={"state": "cancelled"})
            if await cas.write(self.kv, run_id, cancelled.encode(), revision) is not None:
                # Whoever waits for its result (RunHandle.result) hears that it ended.
                state = RunState.model_validate(self.as_state(cancelled))
                await self.nc.publish(
                    protocol.done_subject(run_id), state.model_dump_json().encode()
                )
                return True
        raise ApiError(f"scheduled run '{run_id}' is contended; retry", code=409)
