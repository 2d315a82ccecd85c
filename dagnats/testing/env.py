"""``DagnatsEnv``: a private nats-server, resources, engine, API and client in one block.

Everything runs in the caller's event loop, against a real nats-server on a free loopback
port with a temporary store; nothing is mocked. With ``time_skipping=True`` the timers are
due on a virtual clock that jumps ahead whenever the environment is quiet
(``dagnats.testing.clock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.resources import setup_resources
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import NatsClient
from dagnats.client import Client
from dagnats.engine import Engine
from dagnats.protocol import clock as process_clock
from dagnats.protocol.durations import DurationLike, to_ns, to_seconds
from dagnats.server import ApiService, EmbeddedNats
from dagnats.testing.clock import TimeSkipper, VirtualClock
from dagnats.testing.faults import Faults

if TYPE_CHECKING:
    from dagnats.worker import Worker

log = logging.getLogger(__name__)

QUIET_TIMEOUT_S = 30.0  # how long env.sleep() waits for the environment to go quiet


class DagnatsEnv:
    def __init__(self, url: str, nc: NatsClient, server: EmbeddedNats | None) -> None:
        self.url = url
        self.nc = nc
        self.server = server
        self.client = Client(nc)
        self.engine: Engine | None = None
        self.api: ApiService | None = None
        self._workers: list[tuple[Worker, asyncio.Task[None]]] = []
        self._reconnected = asyncio.Event()
        self.clock: VirtualClock | None = None
        """The virtual clock (``None`` without time skipping)."""
        self.skipper: TimeSkipper | None = None
        self._clock_block: contextlib.ExitStack = contextlib.ExitStack()
        self._engine_options: dict[str, Any] = {}
        self.faults = Faults(self)
        """Deterministic fault injection (``dagnats.testing.faults``)."""

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        *,
        nats_url: str | None = None,
        engine: bool = True,
        api: bool = True,
        time_skipping: bool = False,
    ) -> AsyncIterator[DagnatsEnv]:
        """A running environment; with ``nats_url`` it uses that server instead of its own.

        ``time_skipping=True``: timers (sleeps, retry backoffs, loop delays, timeouts,
        scheduled runs) are due on a virtual clock that jumps to the next one whenever no
        task is queued or running; it is the process' clock while the block runs
        (``dagnats.protocol.clock``), so events and deadlines are stamped with it.
        """
        server: EmbeddedNats | None = None
        if nats_url is None:
            server = EmbeddedNats(port=0)
            await server.start()
            nats_url = server.url
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        # Reconnect quickly and for good: tests restart the server under a live environment.
        nc = await connect_nats(
            nats_url,
            max_reconnect_attempts=-1,
            reconnect_time_wait_s=0.1,
            reconnected_cb=on_reconnect,
        )
        env = cls(nats_url, nc, server)
        env._reconnected = reconnected
        try:
            if time_skipping:
                env._install_clock()
            await setup_resources(nc.jetstream())
            if engine:
                await env.start_engine()
            if api:
                env.api = ApiService(nc)
                await env.api.start()
            yield env
        finally:
            await env.close()

    async def start_engine(self, **options: Any) -> Engine:
        """Start (or restart, after ``stop_engine``) the engine in this loop; ``options``
        go to ``Engine`` (e.g. ``max_event_deliveries``)."""
        if options:
            self._engine_options = dict(options)  # an engine taking over after a crash
        options = {**self._engine_options}
        if self.clock is not None:
            options.setdefault("clock", self.clock)
        self.engine = Engine(self.nc, **options)
        await self.engine.start()
        return self.engine

    def _install_clock(self) -> None:
        self.clock = VirtualClock()
        self._clock_block.enter_context(process_clock.use(self.clock))
        self.skipper = TimeSkipper(self.nc.jetstream(), self.clock)
        self.skipper.start()

    def now(self) -> datetime:
        """The environment's time of day: the virtual clock's with time skipping."""
        return self.clock.now() if self.clock is not None else datetime.now(UTC)

    async def sleep(
        self, duration: DurationLike, *, quiet_timeout_s: float = QUIET_TIMEOUT_S
    ) -> None:
        """Let ``duration`` pass (a number is seconds, or ``"1h"``, or a timedelta).

        With time skipping, the clock moves to each timer due within it in turn, letting
        the environment go quiet after each (so a timer's consequences happen before the
        next one fires), then to the end of it; deadlines the clock does not jump to on its
        own (an approval's, an event wait's) pass here too. Without, a plain sleep.
        """
        seconds = to_seconds(to_ns(duration, "env.sleep duration"))
        if self.clock is None or self.skipper is None:
            await asyncio.sleep(seconds)
            return
        target = self.clock.now() + timedelta(seconds=seconds)
        async with self.skipper.lock:
            while True:
                await self.skipper.wait_quiet(quiet_timeout_s)
                due = self.clock.next_due()
                if due is None or due > target:
                    break
                await self.clock.advance_to(due)
            await self.clock.advance_to(target)

    async def wait_quiet(self, timeout_s: float = QUIET_TIMEOUT_S) -> None:
        """Return once nothing is queued, running or being applied (time skipping only)."""
        if self.skipper is None:
            raise RuntimeError("wait_quiet needs DagnatsEnv.start(time_skipping=True)")
        await self.skipper.wait_quiet(timeout_s)

    async def stop_engine(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
            self.engine = None

    async def restart_server(self, timeout_s: float = 15.0, *, kill: bool = False) -> None:
        """Stop the embedded nats-server and start it on the same port and store.

        Returns once this environment's connection is back (the engine, API and workers
        reconnect on their own). Stop the engine first to restart both.
        """
        if self.server is None:
            raise RuntimeError("this environment uses an external NATS server (nats_url)")
        self._reconnected.clear()
        await self.server.stop(kill=kill)
        await self.server.start()
        await asyncio.wait_for(self._reconnected.wait(), timeout_s)

    @property
    def workers(self) -> list[Worker]:
        """The workers added with ``add_worker`` and still running."""
        return [w for w, _ in self._workers]

    def add_worker(self, worker: Worker) -> Worker:
        """Run ``worker`` in the background of this environment, on its NATS server."""
        worker.nats_url = self.url
        task = asyncio.create_task(worker.run(), name=f"dagnats-worker-{worker.name}")
        self._workers.append((worker, task))
        return worker

    async def wait_workers_ready(self, timeout_s: float = 10.0) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(w.ready.wait() for w, _ in self._workers)), timeout_s
        )

    async def stop_worker(self, worker: Worker) -> None:
        for w, task in list(self._workers):
            if w is worker:
                await w.stop()
                await _worker_ended(task)
                self._workers.remove((w, task))

    async def close(self) -> None:
        try:
            await self._stop_parts()
        finally:
            # Whatever failed above, the process clock is the wall clock again (else every
            # later time-skipping environment of this process would be refused).
            if self.skipper is not None:
                await self.skipper.stop()
            if self.clock is not None:
                await self.clock.close()
            self._clock_block.close()
            await self._close_connection()

    async def _stop_parts(self) -> None:
        await self.faults.close()

        async def stop(w: Worker, task: asyncio.Task[None]) -> None:
            with contextlib.suppress(Exception):
                await w.stop()
            await _worker_ended(task)

        await asyncio.gather(*(stop(w, t) for w, t in self._workers))  # side by side
        self._workers.clear()
        if self.api is not None:
            await self.api.stop()
            self.api = None
        await self.stop_engine()

    async def _close_connection(self) -> None:
        with contextlib.suppress(Exception):
            if self.nc.is_connected:
                await self.nc.drain()
            else:  # the server is gone: nothing to flush, do not wait for a reconnect
                await self.nc.close()
        if self.server is not None:
            await self.server.close()


async def _worker_ended(task: asyncio.Task[None]) -> None:
    """Wait (30 s) for a stopped worker's task to end, then cancel it; unlike a suppressed
    ``wait_for``, a cancellation of the caller goes through (dagnats._nats.tasks)."""
    _done, pending = await asyncio.wait([task], timeout=30)
    for late in pending:
        await stop_task(late, timeout_s=5)
