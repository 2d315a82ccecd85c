"""Run snapshots and workflow definitions, cached in front of their KV buckets.

The snapshot is a cache of the event log (DESIGN.md §1.2): every write is a compare-and-swap
on the KV revision, so a write based on a stale state is refused rather than lost over
another. With several engines (ADR 0013) each write also carries the writer's partition
lease epoch (``fence``): an engine whose lease is gone cannot write, and one that reads a
snapshot written under a newer epoch knows another engine took its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.kvscan import key_history, list_keys
from dagnats._nats.payloads import Payloads, decode_run, encode_run
from dagnats._nats.types import (
    JetStreamContext,
    KeyNotFoundError,
    KeyValue,
)
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine.state import RunState
from dagnats.errors import ApiError
from dagnats.protocol import keys, partitions

log = logging.getLogger(__name__)

DEFS_HISTORY = 64  # values kept per workflow (the bucket's history setting)
MAX_CACHED_DEFS = 1000
PUT_ATTEMPTS = 10  # registrations of one workflow racing each other
WRITE_DELAY_S = 0.1  # how long a running run's staged snapshot may wait for its write
# Under load (more runs than this waiting for their write) a staged snapshot waits longer:
# most runs then write only their terminal state (ADR 0016, item 10). Once busy, it stays
# so until fewer runs wait (fewer than 256 new states a second), a bounded lag either way.
BUSY_STAGED_RUNS, WRITE_DELAY_BUSY_S = 256, 1.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What ``workflow_runs`` holds for one run."""

    state: RunState | None
    """The decoded snapshot; ``None`` when there is no key or only a delete marker."""
    revision: int
    """The KV revision (0 when the key was never written): the base of a compare-and-swap."""
    exists: bool
    """Whether the key exists at all (a delete marker counts: the run was deleted)."""
    epoch: int = 0
    """The lease epoch it was written under (0: written without one)."""


async def read_snapshot(kv: KeyValue, payloads: Payloads, run_id: str) -> Snapshot:
    """The stored snapshot of ``run_id`` (offloaded parts resolved), or an empty one."""
    try:
        entry = await kv.get(run_id)
    except KeyNotFoundError:
        return Snapshot(None, 0, exists=False)
    revision = entry.revision or 0
    if not entry.value:  # a delete/purge marker
        return Snapshot(None, revision, exists=True)
    return Snapshot(
        await decode_run(payloads, entry.value),
        revision,
        exists=True,
        epoch=partitions.epoch_of(entry.value),
    )


async def watch_snapshot(
    kv: KeyValue, payloads: Payloads, run_id: str, *, timeout_s: float
) -> AsyncIterator[RunState]:
    """The stored snapshot of ``run_id`` now (if any) and each one written after it.

    Raises ``TimeoutError`` when ``timeout_s`` passes without a new write, so a caller's
    wait is bounded even if the run never changes again.
    """
    watcher = await kv.watch(run_id, include_history=False, inactive_threshold=timeout_s * 2)
    try:
        while True:
            try:
                entry = await watcher.updates(timeout=timeout_s)  # type: ignore[no-untyped-call]
            except TimeoutError as exc:  # nats-py's or asyncio's: both are TimeoutError
                raise TimeoutError(f"run {run_id} did not change within {timeout_s}s") from exc
            if entry is None or not entry.value:  # end of the initial values, or a delete
                continue
            yield await decode_run(payloads, entry.value)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]


def same_definition(a: WorkflowDef, b: WorkflowDef) -> bool:
    """Whether two definitions say the same (registering one again adds no revision)."""
    return _canonical(a) == _canonical(b)


def _canonical(defn: WorkflowDef) -> str:
    return json.dumps(defn.model_dump(), sort_keys=True, default=str)


class ConflictError(Exception):
    """The snapshot changed under us (another writer): reload and re-apply."""


class FencedError(Exception):
    """This engine does not hold the lease of the run's partition: it must not write."""


Fence = Callable[[str], int]
"""The writer's lease epoch for a run id; raises FencedError when it holds no lease."""


class RunStore:
    """``workflow_runs`` with a bounded LRU cache of (state, revision) of running runs.

    ``stage`` puts a newer state in the cache only (write-behind); ``save`` writes through.
    The revision kept with a staged state is still the last one written, so the eventual
    write is a compare-and-swap against what is really in KV. Staged entries are never
    evicted before they are written. A finished run leaves the cache once it is written
    (its terminal state is saved at once, never staged).
    """

    def __init__(self, kv: KeyValue, payloads: Payloads, *, max_cached: int = 10_000) -> None:
        self.kv = kv
        self.payloads = payloads
        self._cache: OrderedDict[str, tuple[RunState, int]] = OrderedDict()
        self._max = max_cached
        self.dirty: set[str] = set()
        # Per cached run, the lease epoch under which the engine has seen its events in
        # stream order since a catch-up from the history: only then may the next event be
        # applied to the cached state without reading the history (ADR 0017).
        self._in_order: dict[str, int] = {}
        self.fence: Fence | None = None
        """Set by a partitioned engine: every write is stamped with (and refused without)
        its lease epoch, and a snapshot of a newer epoch is refused on load."""

    @classmethod
    async def open(cls, js: JetStreamContext, **kw: int) -> RunStore:
        return cls(await js.key_value(protocol.KV_RUNS), Payloads(js), **kw)

    async def load(self, run_id: str, *, fresh: bool = False) -> tuple[RunState | None, int]:
        """The run and its KV revision (0 = no snapshot yet)."""
        if not fresh:
            hit = self._cache.get(run_id)
            if hit is not None:
                self._cache.move_to_end(run_id)
                return hit
        stored = await read_snapshot(self.kv, self.payloads, run_id)
        if self.fence is not None and stored.epoch > self.fence(run_id):
            self.forget(run_id)
            raise FencedError(f"run {run_id} was written under a newer lease ({stored.epoch})")
        if stored.state is None:
            if not stored.exists:
                self._drop(run_id)
            return None, stored.revision
        self._in_order.pop(run_id, None)  # read back: in order only once caught up again
        self._remember(run_id, stored.state, stored.revision)
        return stored.state, stored.revision

    async def save(self, run: RunState, revision: int) -> int:
        data = await encode_run(self.payloads, run)
        if self.fence is not None:
            data = partitions.stamp_epoch(data, self.fence(run.run_id))
        new_rev = await cas.write(self.kv, run.run_id, data, revision)
        if new_rev is None:
            self._drop(run.run_id)
            self.dirty.discard(run.run_id)
            raise ConflictError(run.run_id)
        self.dirty.discard(run.run_id)
        self._remember(run.run_id, run, new_rev)
        return new_rev

    def stage(self, run: RunState, revision: int) -> None:
        """Cache ``run`` as current; KV keeps ``revision`` until ``flush``."""
        if self.fence is not None:
            self.fence(run.run_id)  # a lease lost meanwhile: nothing stale stays cached
        self.dirty.add(run.run_id)
        self._remember(run.run_id, run, revision)

    async def flush(self, run_id: str) -> None:
        if run_id not in self.dirty:
            return
        hit = self._cache.get(run_id)
        if hit is None:
            self.dirty.discard(run_id)
            return
        await self.save(*hit)

    def write_delay_s(self) -> float:
        """How long a state staged now may wait for its write (``flush``)."""
        return WRITE_DELAY_BUSY_S if len(self.dirty) > BUSY_STAGED_RUNS else WRITE_DELAY_S

    def cached(self, run_id: str) -> bool:
        return run_id in self._cache

    def applied_through(self, run_id: str) -> int:
        """The seq of the last event applied to the cached state (0 when not cached)."""
        hit = self._cache.get(run_id)
        return hit[0].last_seq if hit is not None else 0

    def in_order(self, run_id: str) -> int | None:
        """The lease epoch under which the cached state of ``run_id`` has followed its
        events in stream order (``None``: not cached, or not known to be in order)."""
        return self._in_order.get(run_id)

    def mark_in_order(self, run_id: str, epoch: int) -> None:
        """The cached state of ``run_id`` holds every event of the run up to its
        ``last_seq``, and the events after it come in order (until forgotten)."""
        if run_id in self._cache:
            self._in_order[run_id] = epoch

    def forget(self, run_id: str) -> None:
        self._drop(run_id)
        self.dirty.discard(run_id)

    def _drop(self, run_id: str) -> None:
        self._cache.pop(run_id, None)
        self._in_order.pop(run_id, None)

    def run_ids(self) -> list[str]:
        """Every cached run id (a partition handed over drops its runs)."""
        return list(self._cache)

    def _remember(self, run_id: str, state: RunState, rev: int) -> None:
        if state.terminal and run_id not in self.dirty:
            # A finished run is not kept: its events are over (a late one, or a retry,
            # reads the snapshot again), and 20,000 of them would hold ~130 MiB.
            self._drop(run_id)
            return
        self._cache[run_id] = (state, rev)
        self._cache.move_to_end(run_id)
        while len(self._cache) > self._max + len(self.dirty):
            oldest = next(iter(self._cache))
            if oldest in self.dirty:
                self._cache.move_to_end(oldest)  # written soon; evict something else
                continue
            self._drop(oldest)


def stored_definition(value: bytes | None, kv_revision: int | None) -> tuple[Any, int]:
    """A ``workflow_defs`` value decoded: (the definition's JSON, its revision number).

    The value is an envelope ``{"revision": n, "definition": {...}}``, or a bare definition
    written before revisions counted per workflow (its number is then its KV revision).
    Raises ``ValueError`` on a value that is not JSON.
    """
    doc = json.loads(value or b"null")
    if isinstance(doc, dict) and "steps" not in doc and isinstance(doc.get("revision"), int):
        return doc.get("definition") or {}, int(doc["revision"])
    return doc, kv_revision or 0


class DefinitionStore:
    """``workflow_defs``: one key per workflow; each registered version is a new value of it.

    Revisions count per workflow (its first definition is revision 1) and are kept in the
    value, ``{"revision": n, "definition": {...}}``: the KV revision is the bucket's
    sequence, shared by every workflow. A value written before that envelope existed (a bare
    definition) keeps its KV revision as its number, so runs pinned to it still find it;
    new revisions continue above it. The bucket keeps 64 values per key (the history
    setting), so the 64 newest revisions of each workflow stay readable.
    """

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._by_rev: OrderedDict[tuple[str, int], WorkflowDef] = OrderedDict()
        # name -> latest (definition, revision), kept true by a watch once ``watch()`` ran.
        self._latest: dict[str, tuple[WorkflowDef, int]] = {}
        self._watching = False
        self._watcher: Any = None
        self._seen: dict[str, int] = {}  # newest KV revision per name the watch reported
        self._watch_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, js: JetStreamContext) -> DefinitionStore:
        return cls(await js.key_value(protocol.KV_DEFS))

    async def watch(self) -> None:
        """Keep the latest revision of every workflow cached, invalidated by a KV watch."""
        self._watcher = await self.kv.watchall(ignore_deletes=False, meta_only=True)
        self._watching = True
        self._watch_task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        async for entry in self._watcher:
            if entry is None:
                continue
            # Any change to a name (a new version or a delete) drops what we knew.
            name = keys.workflow_of_definition_key(entry.key)
            self._seen[name] = max(self._seen.get(name, 0), entry.revision or 0)
            self._latest.pop(name, None)

    async def close(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
            if self._watch_task is not None:
                self._watch_task.cancel()
            self._watcher = None
            self._watching = False

    async def get(self, name: str, revision: int | None = None) -> tuple[WorkflowDef, int] | None:
        """The latest definition of ``name``, or its ``revision``; ``None`` when absent."""
        if revision is None and self._watching:
            latest = self._latest.get(name)
            if latest is not None:
                return latest
        if revision is not None:
            hit = self._by_rev.get((name, revision))
            if hit is not None:
                return hit, revision
        entry = await self._latest_entry(name)
        if entry is not None:
            defn, rev = self._remember(name, entry)
            if revision is None:
                if self._watching and (entry.revision or 0) >= self._seen.get(name, 0):
                    # A get that raced an update must not cache the older revision.
                    self._latest[name] = (defn, rev)
                return defn, rev
            if rev == revision:
                return defn, rev
        elif revision is None:
            return None
        await self.revisions(name)  # an older revision: read the history once, remember all
        hit = self._by_rev.get((name, revision))
        return (hit, revision) if hit is not None else None

    async def revisions(self, name: str) -> list[int]:
        """The revisions of ``name`` still stored, oldest first (``[]`` for none)."""
        entries = await key_history(self.kv, keys.definition_key(name), limit=DEFS_HISTORY)
        return sorted({self._remember(name, e)[1] for e in entries if e.value})

    async def names(self) -> list[str]:
        """Every registered workflow's name (bounded like every key listing), sorted."""
        return sorted(keys.workflow_of_definition_key(k) for k in await list_keys(self.kv))

    async def delete(self, name: str) -> None:
        """A delete marker: past revisions stay readable for runs that still use them."""
        await self.kv.delete(keys.definition_key(name))

    async def put(self, defn: WorkflowDef) -> int:
        """Store ``defn`` as the next revision of its workflow (1 for a new one), unless the
        latest revision is the same definition: then that revision's number. Registering is
        idempotent also when identical registrations race (one writes, the rest find it)."""
        body = defn.model_dump(mode="json", by_alias=True, exclude_none=True)
        for _ in range(PUT_ATTEMPTS):
            entry = await self._latest_entry(defn.name)
            if entry is not None:
                latest, base = self._remember(defn.name, entry)
                if same_definition(latest, defn):
                    return base
                last = entry.revision or 0
            else:  # new, or deleted: numbering goes on above what the history holds
                base, last = max(await self.revisions(defn.name), default=0), 0
            data = json.dumps({"revision": base + 1, "definition": body}).encode()
            key = keys.definition_key(defn.name)
            if await cas.write(self.kv, key, data, last) is not None:
                self._by_rev[(defn.name, base + 1)] = defn
                return base + 1
        raise ApiError(
            f"workflow '{defn.name}': {PUT_ATTEMPTS} registrations raced this one; try again",
            code=409,
        )

    async def _latest_entry(self, name: str) -> KeyValue.Entry | None:
        try:
            entry = await self.kv.get(keys.definition_key(name))
        except KeyNotFoundError:
            return None
        return entry if entry.value else None

    def _remember(self, name: str, entry: KeyValue.Entry) -> tuple[WorkflowDef, int]:
        """Decode a stored value (an envelope, or a bare definition of old) and cache it."""
        source, rev = stored_definition(entry.value, entry.revision)
        defn = self._by_rev.get((name, rev)) or load_definition(source)
        self._by_rev[(name, rev)] = defn
        while len(self._by_rev) > MAX_CACHED_DEFS:
            self._by_rev.popitem(last=False)
        return defn, rev
