"""Scheduled runs: the timer of a run whose ``run_at`` came publishes its prepared start.

The API stored a :class:`~dagnats.protocol.control.ScheduledRun` (definition revision
pinned, input checked) and a timer on ``TIMERS``; both survive engine restarts. The record
moves ``scheduled -> starting -> started`` by compare-and-swap, so a cancel that wins the
race leaves the run unstarted, and a cancel that loses finds it ``starting`` and cancels the
run itself. A timer delivered twice publishes the same deduplicated start.
"""

from __future__ import annotations

import logging

from dagnats._nats import cas
from dagnats._nats.publish import append_event
from dagnats._nats.types import JetStreamContext, KeyValue
from dagnats.protocol import events as ev
from dagnats.protocol.control import ScheduledRun

log = logging.getLogger(__name__)

MAX_CAS_TRIES = 5


async def start_scheduled(js: JetStreamContext, kv: KeyValue, run_id: str) -> bool:
    """Start the scheduled run ``run_id`` unless it was cancelled; whether it was started."""
    for _ in range(MAX_CAS_TRIES):
        raw, revision = await cas.read(kv, run_id)
        if raw is None:
            log.warning("scheduled run %s has no record: not started", run_id)
            return False
        record = ScheduledRun.model_validate_json(raw)
        if record.state in ("cancelled", "started"):
            return False
        if record.state == "scheduled":
            starting = record.model_copy(update={"state": "starting"})
            revision_now = await cas.write(kv, run_id, starting.encode(), revision)
            if revision_now is None:
                continue  # a cancel (or another timer) changed it: look again
            revision = revision_now
        await append_event(js, *ev.scheduled_started(record))
        started = record.model_copy(update={"state": "started"})
        await cas.write(kv, run_id, started.encode(), revision)
        return True
    raise RuntimeError(f"scheduled run {run_id}: its record kept changing; retrying later")
