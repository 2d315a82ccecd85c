"""Per-task-type limits at dispatch: ``rate_limit`` (token bucket) and ``max_task_concurrency``.

Both live in KV and change only by compare-and-swap (at most ``MAX_CAS_TRIES`` per call), so
any number of engines share them. A task that may not start yet is not dropped: the caller
defers its dispatch through the timer stream and tries again when a token or slot is due.
Concurrency slots are a set of holder ids (one per attempt), so releasing is idempotent.
"""

from __future__ import annotations

import bisect
import logging
import time
from dataclasses import dataclass
from typing import Any

from dagnats import protocol
from dagnats._nats.cas import delete_if, read_json, write_json
from dagnats._nats.types import KeyValue
from dagnats.dag.definition.flow import singleton_scope
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.machine.actions import DispatchTask
from dagnats.dag.machine.state import RunState
from dagnats.protocol import keys

log = logging.getLogger(__name__)

MAX_CAS_TRIES = 10
SLOT_RETRY_S = 0.25  # how soon a task waiting for a concurrency slot looks again
MAX_HOLDERS = 100_000


@dataclass(frozen=True)
class Verdict:
    ok: bool
    retry_in_s: float = 0.0


async def take_token(
    kv: KeyValue, task: str, limit: int, period_s: float, units: int = 1
) -> Verdict:
    """Take ``units`` tokens from the bucket ``task`` (``limit`` per ``period_s``); else
    say when to try again. ``task`` is the KV key: a task name, or a keyed bucket's key."""
    rate = limit / period_s
    need = float(min(units, limit))
    for _ in range(MAX_CAS_TRIES):
        state, rev = await read_json(kv, task)
        now = time.time()
        tokens = float(limit)
        if state is not None:
            last = float(state.get("ts", now))
            saved = float(state.get("tokens", limit))
            tokens = min(float(limit), saved + (now - last) * rate)
        if tokens < need:
            return Verdict(False, (need - tokens) / rate)
        if await write_json(kv, task, {"tokens": tokens - need, "ts": now}, rev):
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


# Keeps the queue record (28-byte ids plus a due time each) well under the 1 MiB value limit.
MAX_WAITING_RUNS = 15_000


async def admit_run(
    kv: KeyValue,
    workflow: str,
    run_id: str,
    max_runs: int,
    *,
    due_s: float | None = None,
) -> bool | None:
    """Take a run slot (True), join the queue (False), or None when the queue is full.

    The queue is ordered by ``due_s`` (arrival time plus the workflow's priority offset),
    ties in arrival order; ``None`` queues at the back.
    """
    key = keys.run_queue_key(workflow)
    for _ in range(MAX_CAS_TRIES):
        state, rev = await read_json(kv, key)
        record = dict(state or {})
        holders = list(record.get("holders", []))
        waiting = list(record.get("waiting", []))
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
            _enqueue(record, waiting, run_id, due_s)
            admitted = False
        record.update(holders=holders, waiting=waiting)
        if await write_json(kv, key, record, rev):
            return admitted
    raise RuntimeError(f"could not update the run queue of workflow {workflow!r}")


def _enqueue(record: dict[str, Any], waiting: list[str], run_id: str, due_s: float | None) -> None:
    """Insert ``run_id`` into ``waiting`` after every run due no later (ties: arrival order).

    ``due`` runs parallel to ``waiting``: integer milliseconds, so the record stays small.
    """
    due = [int(d) for d in record.get("due", [])]
    if len(due) != len(waiting):  # a record written before priorities: all equal, in order
        due = [0] * len(waiting)
    mine = int(due_s * 1000) if due_s is not None else max([*due, int(time.time() * 1000)])
    at = bisect.bisect_right(due, mine)
    waiting.insert(at, run_id)
    due.insert(at, mine)
    record["due"] = due


async def release_run(kv: KeyValue, workflow: str, run_id: str, max_runs: int) -> list[str]:
    """Free ``run_id``'s slot (or queue place); returns the runs to announce as admitted.

    Promoted runs are also kept in the record's ``announce`` list until
    :func:`announced` clears them, so if an engine dies between promoting and announcing,
    the next release announces them again (``workflow.admitted`` is idempotent).
    """
    key = keys.run_queue_key(workflow)
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
        record = {
            "holders": holders,
            "waiting": waiting,
            "announce": announce,
            "due": _due_of(state, waiting),
        }
        if await write_json(kv, key, record, rev):
            return announce
    raise RuntimeError(f"could not update the run queue of workflow {workflow!r}")


def _due_of(state: dict[str, Any], waiting: list[str]) -> list[int]:
    """The ``due`` entries of the runs still waiting, in queue order."""
    old_waiting = list(state.get("waiting", []))
    old_due = list(state.get("due", []))
    if len(old_due) != len(old_waiting):
        return [0] * len(waiting)
    by_id = dict(zip(old_waiting, old_due, strict=True))
    return [int(by_id.get(w, 0)) for w in waiting]


async def announced(kv: KeyValue, workflow: str, run_ids: list[str]) -> None:
    """Forget promotions that have been announced (best effort; a repeat is harmless)."""
    key = keys.run_queue_key(workflow)
    for _ in range(MAX_CAS_TRIES):
        state, rev = await read_json(kv, key)
        if not state:
            return
        left = [a for a in state.get("announce", []) if a not in run_ids]
        if await write_json(kv, key, {**state, "announce": left}, rev):
            return


def is_limited(t: DispatchTask) -> bool:
    """Whether the task must pass :func:`check_limits` before it is published."""
    return bool(t.rate_limit or t.max_task_concurrency or t.keyed_rate)


def limits_of(t: DispatchTask) -> dict[str, Any]:
    return {
        "task_name": t.task,
        "holder": t.dedup_id,
        "rate_limit": list(t.rate_limit) if t.rate_limit else None,
        "max_task_concurrency": t.max_task_concurrency,
        "keyed_rate": list(t.keyed_rate) if t.keyed_rate else None,
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
    keyed = limits.get("keyed_rate")
    verdict = Verdict(True)
    if rate:
        limit, period_ns = rate
        verdict = await take_token(kv[protocol.KV_RATE_LIMITS], task, int(limit), period_ns / 1e9)
    elif keyed:
        token, limit, period_ns, units = keyed
        bucket = keys.keyed_rate_key(task, str(token))
        verdict = await take_token(
            kv[protocol.KV_RATE_LIMITS], bucket, int(limit), period_ns / 1e9, int(units)
        )
    if rate or keyed:
        if not verdict.ok:
            if max_conc:  # do not sit on a slot while waiting for a token
                await release_slots(kv[protocol.KV_CONCURRENCY], task, holder=holder)
            return verdict.retry_in_s
    return None


async def release_singleton(kv: KeyValue, defn: WorkflowDef, run: RunState) -> None:
    """Drop an ended run's singleton claim (if it still holds it: a newer run's stays)."""
    scope = singleton_scope(defn, run.input)
    if scope is None:
        return
    key = keys.singleton_key(defn.name, scope)
    held, rev = await read_json(kv, key)
    if held is not None and held.get("run_id") == run.run_id:
        await delete_if(kv, key, rev)
