"""The engine's retention sweep: finished runs older than ``retention_s`` are removed.

Finished runs are otherwise kept as long as the streams keep anything (400 days), about
2.6 KB each for a three-step run (docs/operations.md): a sweep every ``interval_s`` removes
at most ``MAX_RUNS_PER_SWEEP`` runs whose ``finished_at`` is older than the retention,
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
from dagnats._nats.retention import expired_runs, objects_by_run, remove_run
from dagnats._nats.types import KeyValue, NatsClient

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 600.0


class Retention:
    def __init__(
        self,
        nc: NatsClient,
        retention_s: float,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        """``owns``: whether this engine removes a run (the holder of its partition, so
        that with several engines each run is removed by one of them)."""
        if retention_s <= 0:
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
        for bucket in (protocol.KV_RUNS, protocol.KV_CHECKPOINTS, protocol.KV_SIGNALS):
            self._stores[bucket] = await self.js.key_value(bucket)
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="dagnats-retention")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
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
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self.retention_s)
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
        log.info(
            "retention: removed %d finished run(s) older than %gs", len(expired), self.retention_s
        )
        return len(expired)
