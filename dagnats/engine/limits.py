"""Per-task-type limits at dispatch: ``rate_limit`` (token bucket) and ``max_task_concurrency``.

Both live in KV and change only by compare-and-swap (at most ``MAX_CAS_TRIES`` per call), so
any number of engines share them. A task that may not start yet is not dropped: the caller
defers its dispatch through the timer stream and tries again when a token or slot is due.
Concurrency slots are a set of holder ids (one per attempt), so releasing is idempotent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from dagnats import protocol
from dagnats._nats.cas import read_json, write_json
from dagnats._nats.types import KeyValue
from dagnats.dag.machine.actions import DispatchTask

log = logging.getLogger(__name__)

MAX_CAS_TRIES = 10
SLOT_RETRY_S = 0.25  # how soon a task waiting for a concurrency slot looks again
MAX_HOLDERS = 100_000


@dataclass(frozen=True)
class Verdict:
    ok: bool
    retry_in_s: float = 0.0


async def take_token(kv: KeyValue, task: str, limit: int, period_s: float) -> Verdict:
    """One start of ``task`` under ``limit`` per ``period_s``; else when to try again."""
    rate = limit / period_s
    for _ in range(MAX_CAS_TRIES):
        state, rev = await read_json(kv, task)
        now = time.time()
        tokens = float(limit)
        if state is not None:
            last = float(state.get("ts", now))
            saved = float(state.get("tokens", limit))
            tokens = min(float(limit), saved + (now - last) * rate)
        if tokens < 1.0:
            return Verdict(False, (1.0 - tokens) / rate)
        if await write_json(kv, task, {"tokens": tokens - 1.0, "ts": now}, rev):
            return Verdict(True)
    return Verdict(False, 0.05)  # heavy contention: back off briefly, never spin


async def acquire_slot(kv: KeyValue, task: str, holder: str, limit: int) -> Verdict:
    key = f"task.{task}"
    for _ in range(MAX_CAS_TRIES):
        state, rev = await read_json(kv, key)
        holders = list(state.get("holders", [])) if state else []
        if holder in holders:
            return Verdict(True)  # a repeated dispatch of the same attempt
        if len(holders) >= min(limit, MAX_HOLDERS):
            return Verdict(False, SLOT_RETRY_S)
        if await write_json(kv, key, {"holders": [*holders, holder]}, rev):
            return Verdict(True)
    return Verdict(False, 0.05)


async def release_slots(
    kv: KeyValue, task: str, *, holder: str | None = None, prefix: str | None = None
) -> None:
    """Free one holder, or every holder starting with ``prefix`` (a run that ended)."""
    key = f"task.{task}"
    for _ in range(MAX_CAS_TRIES):
        state, rev = await read_json(kv, key)
        if not state:
            return
        holders = [str(h) for h in state.get("holders", [])]
        keep = [h for h in holders if h != holder and not (prefix and h.startswith(prefix))]
        if len(keep) == len(holders):
            return
        if await write_json(kv, key, {"holders": keep}, rev):
            return
    log.warning("could not release concurrency slot of task %s after %d tries", task, MAX_CAS_TRIES)


MAX_WAITING_RUNS = 20_000  # keeps the queue record well under the 1 MiB value limit


async def admit_run(kv: KeyValue, workflow: str, run_id: str, max_runs: int) -> bool | None:
    """Take a run slot (True), join the queue (False), or None when the queue is full."""
    key = f"run.{workflow}"
    for _ in range(MAX_CAS_TRIES):
        state, rev = await read_json(kv, key)
        holders = list((state or {}).get("holders", []))
        waiting = list((state or {}).get("waiting", []))
        if run_id in holders:
            return True
        if run_id in waiting:
            return False
        if len(holders) < max_runs and not waiting:
            holders.append(run_id)
            admitted = True
        elif len(waiting) >= MAX_WAITING_RUNS:
            return None
        else:
            waiting.append(run_id)
            admitted = False
        record = {**(state or {}), "holders": holders, "waiting": waiting}
        if await write_json(kv, key, record, rev):
            return admitted
    raise RuntimeError(f"could not update the run queue of workflow {workflow!r}")


async def release_run(kv: KeyValue, workflow: str, run_id: str, max_runs: int) -> list[str]:
    """Free ``run_id``'s slot (or queue place); returns the runs to announce as admitted.

    Promoted runs are also kept in the record's ``announce`` list until
    :func:`announced` clears them, so if an engine dies between promoting and announcing,
    the next release announces them again (``workflow.admitted`` is idempotent).
    """
    key = f"run.{workflow}"
    for _ in range(MAX_CAS_TRIES):
        state, rev = await read_json(kv, key)
        if not state:
            return []
        holders = [h for h in state.get("holders", []) if h != run_id]
        waiting = [w for w in state.get("waiting", []) if w != run_id]
        announce = [a for a in state.get("announce", []) if a != run_id]
        while waiting and len(holders) < max_runs:
            promoted = waiting.pop(0)
            holders.append(promoted)
            announce.append(promoted)
        record = {"holders": holders, "waiting": waiting, "announce": announce}
        if await write_json(kv, key, record, rev):
            return announce
    raise RuntimeError(f"could not update the run queue of workflow {workflow!r}")


async def announced(kv: KeyValue, workflow: str, run_ids: list[str]) -> None:
    """Forget promotions that have been announced (best effort; a repeat is harmless)."""
    key = f"run.{workflow}"
    for _ in range(MAX_CAS_TRIES):
        state, rev = await read_json(kv, key)
        if not state:
            return
        left = [a for a in state.get("announce", []) if a not in run_ids]
        if await write_json(kv, key, {**state, "announce": left}, rev):
            return


def limits_of(t: DispatchTask) -> dict[str, Any]:
    return {
        "task_name": t.task,
        "holder": t.dedup_id,
        "rate_limit": list(t.rate_limit) if t.rate_limit else None,
        "max_task_concurrency": t.max_task_concurrency,
    }


async def check_limits(kv: dict[str, KeyValue], limits: dict[str, Any]) -> float | None:
    """None when the task may start now (slot and token taken), else seconds to wait."""
    task, holder = limits["task_name"], limits["holder"]
    max_conc = limits.get("max_task_concurrency")
    if max_conc:
        verdict = await acquire_slot(kv[protocol.KV_CONCURRENCY], task, holder, int(max_conc))
        if not verdict.ok:
            return verdict.retry_in_s
    rate = limits.get("rate_limit")
    if rate:
        limit, period_ns = rate
        verdict = await take_token(kv[protocol.KV_RATE_LIMITS], task, int(limit), period_ns / 1e9)
        if not verdict.ok:
            if max_conc:  # do not sit on a slot while waiting for a token
                await release_slots(kv[protocol.KV_CONCURRENCY], task, holder=holder)
            return verdict.retry_in_s
    return None
