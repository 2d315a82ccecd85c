"""An engine's partition leases: take a fair share, renew, hand over (ADR 0013).

Every ``LEASE_RENEW_S`` the engine heartbeats, renews each lease it holds, reads the whole
lease bucket and follows :func:`~dagnats.protocol.partitions.plan_leases`: free partitions
up to its fair share are taken, partitions above it are drained and given back. A lease
that cannot be renewed is lost at once; a lease whose last successful renewal was *sent*
more than ``LEASE_TTL_S - LEASE_MARGIN_S`` ago is not held any more, whatever the server
still thinks, so an engine that was paused (or cut off) stops acting on its partitions
before another engine can take them.

An engine started with the id of an earlier process of its own (``serve`` on a data
directory, ``dagnats engine --engine-id``) takes that process's leases back at once instead
of waiting for them to lapse, with new epochs. Two live engines must never share an id.

The engine supplies three callbacks: ``acquired(p)`` (start consuming the partition),
``release(p)`` (drain it: finish what is being applied, write staged snapshots) and
``lost(p)`` (drop it without writing anything more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from dagnats._nats import leases as store
from dagnats._nats.stores import FencedError
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import KeyValue, NatsClient
from dagnats.protocol import clock
from dagnats.protocol import partitions as parts

log = logging.getLogger(__name__)

PartitionHook = Callable[[int], Awaitable[None]]
RELEASE_S = 2.0  # the longest a lease's give-back waits (else it lapses on its own)


@dataclass(slots=True)
class Lease:
    epoch: int
    revision: int
    valid_until: float  # time.monotonic(): act on the partition only before this


class PartitionLeases:
    """The leases one engine holds; :meth:`holds` / :meth:`epoch` are the hot-path checks."""

    def __init__(
        self,
        nc: NatsClient,
        n: int,
        engine_id: str,
        *,
        acquired: PartitionHook,
        release: PartitionHook,
        lost: PartitionHook,
        ttl_s: float = parts.LEASE_TTL_S,
        renew_s: float = parts.LEASE_RENEW_S,
        margin_s: float = parts.LEASE_MARGIN_S,
    ) -> None:
        self.nc = nc
        self.n = parts.check_partitions(n)
        self.engine_id = engine_id
        self._acquired = acquired
        self._release = release
        self._lost = lost
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.margin_s = margin_s
        self._held: dict[int, Lease] = {}
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self._tick_lock = asyncio.Lock()
        self.changed = asyncio.Event()
        """Set whenever a partition is taken, given back or lost (tests wait on it)."""
        self.renewing = True
        """Testing seam: ``False`` stops renewals and heartbeats, as a paused process would."""
        self._info = {
            "engine": engine_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": clock.now().isoformat(),
        }
        self.agent_routes: Mapping[str, str] = {}
        """Where the engine sends agent steps, in each heartbeat: "why is my run stuck?"
        reads them there (the engine sets them before :meth:`start`)."""

    def holds(self, p: int) -> bool:
        lease = self._held.get(p)
        return lease is not None and time.monotonic() < lease.valid_until

    def epoch(self, p: int) -> int:
        """The epoch of partition ``p``'s lease; FencedError when it is not held."""
        lease = self._held.get(p)
        if lease is None or time.monotonic() >= lease.valid_until:
            raise FencedError(f"partition {p} is not held by engine {self.engine_id}")
        return lease.epoch

    @property
    def held(self) -> list[int]:
        return sorted(p for p in self._held if self.holds(p))

    async def start(self) -> None:
        self._kv = await self.nc.jetstream().key_value(parts.KV_LEASES)
        try:
            await self.tick()
        except Exception as exc:  # noqa: BLE001 - NATS trouble: the loop's next round retries
            log.warning("engine %s: first lease round failed: %s", self.engine_id, exc)
        self._task = asyncio.create_task(self._loop(), name=f"dagnats-leases-{self.engine_id}")

    async def stop(self, *, release: bool = True) -> None:
        """Stop renewing; with ``release``, drain and give back every partition first."""
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        async with self._tick_lock:
            if release and not self.nc.is_connected:
                # Cut off from NATS: nothing can be written or given back; the leases lapse.
                for p in sorted(self._held):
                    await self.lose(p, "the engine stopped while cut off from NATS")
            if not release:
                self._held.clear()
                return
            for p in sorted(self._held):
                await self._give_back(p)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(store.forget_engine(self.kv, self.engine_id), RELEASE_S)

    async def crash(self) -> None:
        """Testing seam of a crash: stop renewing and delete the leases, as their expiry
        would after ``ttl_s`` (so a test does not wait it out); nothing is drained."""
        held = dict(self._held)
        await self.stop(release=False)
        for p, lease in held.items():
            with contextlib.suppress(Exception):
                await store.release(self.kv, p, lease.revision)

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("the leases are not started")
        return self._kv

    async def _loop(self) -> None:
        began = time.monotonic()
        while True:
            # Rounds start every renew_s however long the last took (a busy engine's round
            # is slow; adding the sleep after it would stretch the gap between renewals).
            await asyncio.sleep(max(0.0, began + self.renew_s - time.monotonic()))
            began = time.monotonic()
            try:
                await self.tick()
            except Exception as exc:  # noqa: BLE001 - NATS trouble: leases lapse, next tick retries
                log.warning("engine %s: lease round failed: %s", self.engine_id, exc)

    async def tick(self) -> None:
        """One round: heartbeat, renew, then take or give back partitions."""
        async with self._tick_lock:
            if not self.renewing:
                await self._drop_lapsed()
                return
            await self._renew_all()  # first: what keeps the partitions this engine works on
            await store.heartbeat(
                self.kv,
                self.engine_id,
                {**self._info, "agent_routes": dict(self.agent_routes), "held": self.held},
            )
            view = await store.read_view(self.nc)
            for p, holder in view.holders.items():
                if holder == self.engine_id and p not in self._held:
                    await self._take(p, adopt_revision=view.revisions.get(p))
            live = set(view.engines) | {self.engine_id}
            plan = parts.plan_leases(self.n, view.holders, live, self.engine_id)
            for p in plan.release:
                await self._give_back(p)
            for p in plan.acquire:
                await self._take(p)

    async def _renew_all(self) -> None:
        """Renew every lease at once (one round trip, not one per partition)."""
        sent = time.monotonic()
        due = {p: lease for p, lease in self._held.items() if sent < lease.valid_until}
        for p in set(self._held) - set(due):
            await self.lose(p, "its lease lapsed before it was renewed")
        revs = await asyncio.gather(
            *(
                store.renew(self.kv, p, self.engine_id, lease.epoch, lease.revision)
                for p, lease in due.items()
            ),
            return_exceptions=True,
        )
        for (p, lease), rev in zip(due.items(), revs, strict=True):
            if isinstance(rev, BaseException):
                continue  # NATS trouble: the lease holds until valid_until, then lapses
            if rev is None:
                await self.lose(p, "its lease was lost")
                continue
            lease.revision = rev
            lease.valid_until = sent + self.ttl_s - self.margin_s

    async def _drop_lapsed(self) -> None:
        for p, lease in list(self._held.items()):
            if time.monotonic() >= lease.valid_until:
                await self.lose(p, "its lease lapsed")

    async def _take(self, p: int, *, adopt_revision: int | None = None) -> None:
        """Take a free partition (or, with ``adopt_revision``, one still held under this
        engine's id by an earlier process of it: a restart with a stable id)."""
        sent = time.monotonic()
        if adopt_revision is None:
            epoch = await store.acquire(self.kv, p, self.engine_id)
        else:
            epoch = await store.adopt(self.kv, p, self.engine_id, adopt_revision)
        if epoch is None:
            return  # another engine was quicker
        self._held[p] = Lease(epoch, epoch, sent + self.ttl_s - self.margin_s)
        log.info("engine %s took partition %d (epoch %d)", self.engine_id, p, epoch)
        await self._acquired(p)
        self.changed.set()

    async def _give_back(self, p: int) -> None:
        lease = self._held.get(p)
        if lease is None:
            return
        await self._release(p)
        self._held.pop(p, None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(store.release(self.kv, p, lease.revision), RELEASE_S)
        log.info("engine %s gave back partition %d", self.engine_id, p)
        self.changed.set()

    async def lose(self, p: int, why: str) -> None:
        """Stop acting on ``p`` at once (nothing more is written for its runs)."""
        if self._held.pop(p, None) is None:
            return
        log.warning("engine %s lost partition %d: %s", self.engine_id, p, why)
        await self._lost(p)
        self.changed.set()
