"""Run logs in the ``run_logs`` bucket: append a step's lines, read a run's logs.

A step's record is rewritten with compare-and-swap (two attempts of one step can overlap
when a lost worker's redelivery meets a slow original); a lost race reads again and
retries, at most ``MAX_CAS_TRIES`` times, then the lines are dropped with a warning (logs
are observability: they never fail a step).
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.kvscan import scan
from dagnats.protocol.keys import kv_subject, run_keys_pattern
from dagnats.protocol.logs import LogLine, StepLog
from dagnats.protocol.names import name_from_token

log = logging.getLogger(__name__)

MAX_CAS_TRIES = 5
MAX_STEP_LOGS = 1000  # step records read for one run (a map of 10 000 items: the first 1000)


def _decode(raw: bytes | None) -> StepLog:
    if raw is None:
        return StepLog()
    try:
        return StepLog.model_validate_json(raw)
    except ValidationError:
        log.warning("a run log record is not valid; starting it afresh")
        return StepLog()


async def append_step_log(kv: KeyValue, key: str, lines: list[LogLine], dropped: int = 0) -> bool:
    """Append ``lines`` (and ``dropped`` lines already left out) to the record at ``key``."""
    if not lines and not dropped:
        return True
    for _ in range(MAX_CAS_TRIES):
        raw, revision = await cas.read(kv, key)
        current = _decode(raw)
        merged = current.extend(lines)
        merged.dropped += dropped
        if await cas.write(kv, key, merged.model_dump_json().encode(), revision) is not None:
            return True
    log.warning("run log %s: %d lines dropped after %d lost races", key, len(lines), MAX_CAS_TRIES)
    return False


async def read_run_logs(kv: KeyValue, run_id: str) -> dict[str, StepLog]:
    """``<step_id>`` or ``<step_id>.<item>`` (a map instance) -> that step's log, for one
    run; the step id as written (keys spell it with ``name_token``)."""
    out: dict[str, StepLog] = {}
    for entry in await scan(kv, run_keys_pattern(run_id), limit=MAX_STEP_LOGS):
        out[name_from_token(entry.key.removeprefix(f"{run_id}."))] = _decode(entry.value)
    return dict(sorted(out.items()))


async def purge_run_logs(js: JetStreamContext, run_id: str) -> None:
    """Remove every log record of a deleted run (no bucket: nothing to remove)."""
    try:
        await js.purge_stream(
            f"KV_{protocol.KV_LOGS}", subject=kv_subject(protocol.KV_LOGS, run_keys_pattern(run_id))
        )
    except NotFoundError:
        return
