"""Removing finished runs older than a retention period: their history, snapshot, offloaded
payloads, checkpoints and signals (the engine's retention sweep, ``--retention``).

A workflow's own ``retention`` (its latest definition's) wins over the global one. A run is
removed only when its snapshot is terminal and finished before its cut-off, so a
running run (however old) is never touched. Each step is idempotent: engines sweeping at
the same time, or a sweep cut short, just remove what is left on the next pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from dagnats import protocol
from dagnats._nats.kvscan import purge_key, scan
from dagnats._nats.payloads import Payloads, decode_run
from dagnats.protocol.durations import parse_long_duration

log = logging.getLogger(__name__)

MAX_RUNS_PER_SWEEP = 1000  # removed per pass at most (bounded work; the next pass goes on)
MAX_SCAN = 20_000  # snapshots read per pass at most
MAX_KEYS_PER_RUN = 10_000  # checkpoints or signals of one run
MAX_WORKFLOWS = 10_000  # definitions read per pass for their own retention


async def workflow_retentions(defs: KeyValue) -> dict[str, float]:
    """Seconds of retention per workflow whose latest definition sets ``retention``."""
    out: dict[str, float] = {}
    for entry in await scan(defs, ">", limit=MAX_WORKFLOWS):
        try:
            raw = json.loads(entry.value or b"{}").get("retention")
            if raw is not None:
                out[entry.key] = parse_long_duration(raw) / 1e9
        except (ValueError, AttributeError):  # not a definition this version reads: kept
            log.warning("retention: workflow %s has an unreadable retention; kept", entry.key)
    return out


async def expired_runs(
    runs: KeyValue,
    payloads: Payloads,
    cutoff: Callable[[str], datetime | None],
    *,
    limit: int = MAX_RUNS_PER_SWEEP,
) -> list[str]:
    """Ids of finished runs whose ``finished_at`` is before ``cutoff(workflow)`` (at most
    ``limit``); a workflow whose cut-off is ``None`` keeps its runs."""
    out: list[str] = []
    for entry in await scan(runs, ">", limit=MAX_SCAN):
        if not entry.value:
            continue
        state = await decode_run(payloads, entry.value)
        if not state.terminal or state.finished_at is None:
            continue
        before = cutoff(state.workflow)
        if before is not None and state.finished_at < before:
            out.append(state.run_id)
            if len(out) >= limit:
                break
    return out


async def objects_by_run(payloads: Payloads) -> dict[str, list[str]]:
    """Names of the payload objects, by the run they belong to (``<run>/...``)."""
    store = await payloads.store()
    try:
        infos = await store.list(ignore_deletes=True)
    except NotFoundError:  # an empty store
        return {}
    out: dict[str, list[str]] = {}
    for info in infos:
        name = info.name or ""
        run_id = name.split("/", 1)[0]
        if run_id and "/" in name and run_id not in ("snapshots", "replies"):
            out.setdefault(run_id, []).append(name)
    return out


async def remove_run(
    js: JetStreamContext,
    stores: dict[str, KeyValue],
    payloads: Payloads,
    run_id: str,
    objects: list[str],
) -> None:
    """Remove everything a finished run left: history, records, snapshot and payloads."""
    await js.purge_stream(protocol.HISTORY_STREAM, subject=protocol.history_filter(run_id))
    for bucket in (protocol.KV_CHECKPOINTS, protocol.KV_SIGNALS):
        kv = stores[bucket]
        for entry in await scan(kv, f"{run_id}.>", limit=MAX_KEYS_PER_RUN):
            await purge_key(kv, entry.key)
    store = await payloads.store()
    for name in objects:
        try:
            await store.delete(name)
        except NotFoundError:
            continue
    await payloads.forget_snapshot(run_id)
    # Last: while the snapshot is there, a sweep cut short finds the run again.
    await purge_key(stores[protocol.KV_RUNS], run_id)
