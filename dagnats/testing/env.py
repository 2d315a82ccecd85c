"""``DagnatsEnv``: a private nats-server, resources, engine, API and client in one block.

Everything runs in the caller's event loop, against a real nats-server on a free loopback
port with a temporary store; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.resources import setup_resources
from dagnats._nats.types import NatsClient
from dagnats.client import Client
from dagnats.engine import Engine
from dagnats.server import ApiService, EmbeddedNats

if TYPE_CHECKING:
    from dagnats.worker import Worker

log = logging.getLogger(__name__)


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

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, *, nats_url: str | None = None, engine: bool = True, api: bool = True
    ) -> AsyncIterator[DagnatsEnv]:
        """A running environment; with ``nats_url`` it uses that server instead of its own."""
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
        self.engine = Engine(self.nc, **options)
        await self.engine.start()
        return self.engine

    async def stop_engine(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
            self.engine = None

    async def restart_server(self, timeout_s: float = 15.0) -> None:
        """Stop the embedded nats-server and start it on the same port and store.

        Returns once this environment's connection is back (the engine, API and workers
        reconnect on their own). Stop the engine first to restart both.
        """
        if self.server is None:
            raise RuntimeError("this environment uses an external NATS server (nats_url)")
        self._reconnected.clear()
        await self.server.stop()
        await self.server.start()
        await asyncio.wait_for(self._reconnected.wait(), timeout_s)

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
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 30)
                self._workers.remove((w, task))

    async def close(self) -> None:
        async def stop(w: Worker, task: asyncio.Task[None]) -> None:
            with contextlib.suppress(Exception):
                await w.stop()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 30)

        await asyncio.gather(*(stop(w, t) for w, t in self._workers))  # side by side
        self._workers.clear()
        if self.api is not None:
            await self.api.stop()
            self.api = None
        await self.stop_engine()
        with contextlib.suppress(Exception):
            if self.nc.is_connected:
                await self.nc.drain()
            else:  # the server is gone: nothing to flush, do not wait for a reconnect
                await self.nc.close()
        if self.server is not None:
            await self.server.close()
