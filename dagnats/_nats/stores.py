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
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.kvscan import list_keys
from dagnats._nats.payloads import Payloads, decode_run, encode_run
from dagnats._nats.types import (
    JetStreamContext,
    KeyNotFoundError,
    KeyValue,
)
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine.state import RunState
from dagnats.protocol import keys, partitions

log = logging.getLogger(__name__)


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


class ConflictError(Exception):
    """The snapshot changed under us (another writer): reload and re-apply."""


class FencedError(Exception):
    """This engine does not hold the lease of the run's partition: it must not write."""


Fence = Callable[[str], int]
"""The writer's lease epoch for a run id; raises FencedError when it holds no lease."""


class RunStore:
    """``workflow_runs`` with a bounded LRU cache of (state, revision).

    ``stage`` puts a newer state in the cache only (write-behind); ``save`` writes through.
    The revision kept with a staged state is still the last one written, so the eventual
    write is a compare-and-swap against what is really in KV. Staged entries are never
    evicted before they are written.
    """

    def __init__(self, kv: KeyValue, payloads: Payloads, *, max_cached: int = 10_000) -> None:
        self.kv = kv
        self.payloads = payloads
        self._cache: OrderedDict[str, tuple[RunState, int]] = OrderedDict()
        self._max = max_cached
        self.dirty: set[str] = set()
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
                self._cache.pop(run_id, None)
            return None, stored.revision
        self._remember(run_id, stored.state, stored.revision)
        return stored.state, stored.revision

    async def save(self, run: RunState, revision: int) -> int:
        data = await encode_run(self.payloads, run)
        if self.fence is not None:
            data = partitions.stamp_epoch(data, self.fence(run.run_id))
        new_rev = await cas.write(self.kv, run.run_id, data, revision)
        if new_rev is None:
            self._cache.pop(run.run_id, None)
            self.dirty.discard(run.run_id)
            raise ConflictError(run.run_id)
        self.dirty.discard(run.run_id)
        self._remember(run.run_id, run, new_rev)
        return new_rev

    def stage(self, run: RunState, revision: int) -> None:
        """Cache ``run`` as current; KV keeps ``revision`` until ``flush``."""
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

    def cached(self, run_id: str) -> bool:
        return run_id in self._cache

    def applied_through(self, run_id: str) -> int:
        """The seq of the last event applied to the cached state (0 when not cached)."""
        hit = self._cache.get(run_id)
        return hit[0].last_seq if hit is not None else 0

    def forget(self, run_id: str) -> None:
        self._cache.pop(run_id, None)
        self.dirty.discard(run_id)

    def run_ids(self) -> list[str]:
        """Every cached run id (a partition handed over drops its runs)."""
        return list(self._cache)

    def _remember(self, run_id: str, state: RunState, rev: int) -> None:
        self._cache[run_id] = (state, rev)
        self._cache.move_to_end(run_id)
        while len(self._cache) > self._max + len(self.dirty):
            oldest = next(iter(self._cache))
            if oldest in self.dirty:
                self._cache.move_to_end(oldest)  # written soon; evict something else
                continue
            self._cache.popitem(last=False)


class DefinitionStore:
    """``workflow_defs``: one key per workflow, one KV revision per registered version."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._by_rev: OrderedDict[tuple[str, int], WorkflowDef] = OrderedDict()
        # name -> latest (definition, revision), kept true by a watch once ``watch()`` ran.
        self._latest: dict[str, tuple[WorkflowDef, int]] = {}
        self._watching = False
        self._watcher: Any = None
        self._seen: dict[str, int] = {}  # newest revision per name the watch reported
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
        if revision is None and self._watching:
            latest = self._latest.get(name)
            if latest is not None:
                return latest
        if revision is not None:
            hit = self._by_rev.get((name, revision))
            if hit is not None:
                return hit, revision
        try:
            entry = await self.kv.get(keys.definition_key(name), revision=revision)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        defn = load_definition(entry.value)
        self._by_rev[(name, entry.revision)] = defn
        if revision is None and self._watching and entry.revision >= self._seen.get(name, 0):
            # A get that raced an update must not cache the older revision.
            self._latest[name] = (defn, entry.revision)
        while len(self._by_rev) > 1000:
            self._by_rev.popitem(last=False)
        return defn, entry.revision

    async def names(self) -> list[str]:
        """Every registered workflow's name (bounded like every key listing), sorted."""
        return sorted(keys.workflow_of_definition_key(k) for k in await list_keys(self.kv))

    async def delete(self, name: str) -> None:
        """A delete marker: past revisions stay readable for runs that still use them."""
        await self.kv.delete(keys.definition_key(name))

    async def put(self, defn: WorkflowDef) -> int:
        data = defn.model_dump_json(by_alias=True, exclude_none=True).encode()
        rev = await self.kv.put(keys.definition_key(defn.name), data)
        self._by_rev[(defn.name, rev)] = defn
        return rev
