"""The engine's retention sweep: finished runs older than their retention are removed.

Finished runs are otherwise kept as long as the streams keep anything (400 days), about
2.6 KB each for a three-step run (docs/operations.md): a sweep every ``interval_s`` removes
at most ``MAX_RUNS_PER_SWEEP`` runs whose ``finished_at`` is older than the retention (the
workflow's own ``retention`` if its definition sets one, else ``retention_s``),
with their history, snapshot, payloads, checkpoints and signals, then tells the engines to
drop them from their caches. Running runs are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dagnats import protocol
from dagnats._nats.payloads import Payloads
from dagnats._nats.retention import expired_runs, objects_by_run, remove_run, workflow_retentions
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import KeyValue, NatsClient

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 600.0


class Retention:
    def __init__(
        self,
        nc: NatsClient,
        retention_s: float | None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        """``retention_s``: for every workflow without a ``retention`` of its own (``None``:
        those keep their runs; the sweep then removes only other workflows' runs).
        ``owns``: whether this engine removes a run (the holder of its partition, so
        that with several engines each run is removed by one of them)."""
        if retention_s is not None and retention_s <= 0:
            raise ValueError(f"retention must be positive, got {retention_s!r} s")
        self.nc = nc
        self.js = nc.jetstream()
        self.retention_s = retention_s
        self.interval_s = interval_s
        self.payloads = Payloads(self.js)
        self.removed = 0
        self.owns = owns
        self._stores: dict[str, KeyValue] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        for bucket in (
            protocol.KV_RUNS,
            protocol.KV_CHECKPOINTS,
            protocol.KV_SIGNALS,
            protocol.KV_DEFS,
        ):
            self._stores[bucket] = await self.js.key_value(bucket)
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="dagnats-retention")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - NATS trouble: the next pass tries again
                log.warning("retention sweep failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    async def sweep(self, now: datetime | None = None) -> int:
        """One pass; returns how many runs it removed."""
        at = now or datetime.now(UTC)
        own = await workflow_retentions(self._stores[protocol.KV_DEFS])
        if self.retention_s is None and not own:
            return 0  # nothing is ever removed: no need to read the runs

        def cutoff(workflow: str) -> datetime | None:
            seconds = own.get(workflow, self.retention_s)
            return None if seconds is None else at - timedelta(seconds=seconds)

        runs = self._stores[protocol.KV_RUNS]
        expired = await expired_runs(runs, self.payloads, cutoff)
        if self.owns is not None:
            expired = [run_id for run_id in expired if self.owns(run_id)]
        if not expired:
            return 0
        objects = await objects_by_run(self.payloads)
        for run_id in expired:
            await remove_run(self.js, self._stores, self.payloads, run_id, objects.get(run_id, []))
            await self.nc.publish(protocol.forget_subject(run_id), b"")
        self.removed += len(expired)
        log.info("retention: removed %d finished run(s) past their retention", len(expired))
        return len(expired)
