"""Finding runs: by an id prefix, the newest one, or a filtered list newest first.

Run ids are 28 characters (12 hex of milliseconds, 16 random hex), too long to type; an
unambiguous prefix of at least ``MIN_PREFIX`` characters names a run wherever an id is
taken (the first 8 characters change every ~65 s, so runs started together need more).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dagnats._nats.history import has_history
from dagnats._nats.kvscan import get_entry, list_keys, scan
from dagnats._nats.payloads import Payloads, decode_run
from dagnats._nats.types import JetStreamContext, KeyValue
from dagnats.dag.machine.state import RunState
from dagnats.errors import ApiError, RunNotFoundError
from dagnats.protocol.limits import check_name

MIN_PREFIX = 8
MAX_CANDIDATES = 10  # shown in the error for an ambiguous or too short prefix
MAX_LIST = 1000
MAX_SCAN = 20_000  # run snapshots examined by one listing at most
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _candidates(matches: list[str]) -> str:
    shown = ", ".join(sorted(matches)[:MAX_CANDIDATES])
    more = len(matches) - MAX_CANDIDATES
    return shown + (f" and {more} more" if more > 0 else "")


async def resolve_run_id(js: JetStreamContext, runs: KeyValue, ref: Any) -> str:
    """The run id that ``ref`` (a whole id, or a prefix of 8+ characters) names.

    Raises ``ApiError`` 400 for a malformed or too short reference, 409 for an ambiguous
    prefix (both list the candidates), ``RunNotFoundError`` when nothing matches.
    """
    if not isinstance(ref, str) or not ref:
        raise ApiError("field 'run_id' is required (a run id or a prefix of one)", code=400)
    check_name(ref, "run_id")  # a KV key and a subject token: bounded before any lookup
    entry = await get_entry(runs, ref)
    if (entry is not None and entry.value) or await has_history(js, ref):
        return ref  # a whole id (a run just started may have no snapshot yet)
    matches = [k for k in await list_keys(runs) if k.startswith(ref)]
    if len(ref) < MIN_PREFIX:
        found = f"; it matches {_candidates(matches)}" if matches else ""
        raise ApiError(
            f"run '{ref}' not found, and a run id prefix needs at least {MIN_PREFIX} "
            f"characters{found}",
            code=400,
        )
    if not matches:
        raise RunNotFoundError(f"run '{ref}' not found (no run id starts with it)")
    if len(matches) > 1:
        raise ApiError(
            f"run id prefix '{ref}' is ambiguous: {len(matches)} runs match "
            f"({_candidates(matches)}); give more characters",
            code=409,
        )
    return matches[0]


def parse_since(value: Any) -> datetime | None:
    """``since`` of a listing: an RFC 3339 time (a zone is required)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(f"field 'since' must be an RFC 3339 time, got {value!r}", code=400)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(f"field 'since' is not an RFC 3339 time: {value!r}", code=400) from exc
    if when.tzinfo is None:
        raise ApiError(f"field 'since' needs a UTC offset (e.g. 'Z'): {value!r}", code=400)
    return when


def _limit(body: dict[str, Any], default: int = 100) -> int:
    raw = body.get("limit")
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ApiError(f"field 'limit' must be an integer from 1 to {MAX_LIST}", code=400)
    return min(raw, MAX_LIST)


async def matching_runs(
    runs: KeyValue, payloads: Payloads, body: dict[str, Any]
) -> tuple[list[RunState], bool]:
    """Run snapshots that match ``workflow`` / ``status`` (one, or a list) / ``since``,
    newest first by creation time, at most ``limit``; and whether more matched."""
    workflow, status = body.get("workflow"), body.get("status")
    if workflow is not None and not isinstance(workflow, str):
        raise ApiError(
            f"field 'workflow' must be a string, got {type(workflow).__name__}", code=400
        )
    statuses = status if isinstance(status, list) else [status]
    if status is not None and not all(isinstance(x, str) for x in statuses):
        raise ApiError("field 'status' must be a string or a list of strings", code=400)
    since = parse_since(body.get("since"))
    limit = _limit(body)
    entries = await scan(runs, ">", limit=MAX_SCAN)
    found: list[RunState] = []
    for entry in entries:
        if not entry.value:
            continue
        s = await decode_run(payloads, entry.value)
        if workflow and s.workflow != workflow:
            continue
        if status and (s.status not in status if isinstance(status, list) else s.status != status):
            continue
        if since is not None and (s.created_at is None or s.created_at < since):
            continue
        found.append(s)
    # Newest first; ties (and runs without a creation time) by id, which is time-ordered.
    found.sort(key=lambda s: (s.created_at or _EPOCH, s.run_id), reverse=True)
    return found[:limit], len(found) > limit


def summary(s: RunState) -> dict[str, Any]:
    return {
        "run_id": s.run_id,
        "workflow": s.workflow,
        "status": s.status,
        "created_at": s.created_at,
        "finished_at": s.finished_at,
    }


async def list_runs(runs: KeyValue, payloads: Payloads, body: dict[str, Any]) -> list[Any]:
    """``run.list``: summaries, newest first by creation time."""
    found, _more = await matching_runs(runs, payloads, body)
    return [summary(s) for s in found]


async def last_run(runs: KeyValue, payloads: Payloads, workflow: str | None) -> str:
    """The id of the newest run (of ``workflow``): what ``--last`` means."""
    found, _ = await matching_runs(runs, payloads, {"workflow": workflow, "limit": 1})
    if not found:
        of = f" of workflow '{workflow}'" if workflow else ""
        raise RunNotFoundError(f"there is no run{of} yet (--last)")
    return found[0].run_id
