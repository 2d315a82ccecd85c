"""``dagnats serve``: embedded NATS, resources, API, engine and the HTTP gateway.

Start-up and shutdown follow ``seeds/003``: started in order, stopped in reverse within a
hard deadline (15 s); past it the nats-server child is killed and the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.resources import setup_resources
from dagnats._nats.types import NatsClient
from dagnats.engine import Engine
from dagnats.server.api import ApiService
from dagnats.server.http import HttpGateway, hooks
from dagnats.server.http import triggers as trigger_rest
from dagnats.server.http.app import Routes
from dagnats.server.http_calls import HttpCalls
from dagnats.server.nats_server import EmbeddedNats, default_data_dir
from dagnats.server.operations import Operations
from dagnats.server.trigger_ops import TriggerOps
from dagnats.server.triggers import TriggerService

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE_S = 15.0


@dataclass
class ServeOptions:
    port: int = 4222
    http_port: int = 8080
    data_dir: Path | None = None
    nats_url: str | None = None
    nats_server: str | None = None
    leaf_remotes: list[str] = field(default_factory=list)
    replicas: int = 1
    engine: bool = True
    api: bool = True
    http: bool = True
    triggers: bool = True


def trigger_routes() -> list[Routes]:
    """The trigger routers: webhooks and HTTP triggers check their own secrets (public);
    the trigger REST wants the bearer token like the rest of the API."""
    return [Routes(hooks.router, public=True), Routes(trigger_rest.router)]


class Serve:
    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        self.nats: EmbeddedNats | None = None
        self.nc: NatsClient | None = None
        self.engine: Engine | None = None
        self.api: ApiService | None = None
        self.http: HttpGateway | None = None
        self.triggers: TriggerService | None = None
        self.http_calls: HttpCalls | None = None
        self.trigger_ops: TriggerOps | None = None
        self._own_ops: Operations | None = None  # the trigger service's, without an API
        self.ready = False

    @property
    def nats_url(self) -> str:
        return self.opts.nats_url or (self.nats.url if self.nats else "")

    async def start(self) -> None:
        o = self.opts
        if o.nats_url is None:
            data_dir = o.data_dir or default_data_dir()
            self.nats = EmbeddedNats(
                port=o.port,
                data_dir=data_dir,
                binary=o.nats_server,
                leaf_remotes=list(o.leaf_remotes),
            )
            await self.nats.start()
        self.nc = await connect_nats(self.nats_url, max_reconnect_attempts=-1)
        await setup_resources(self.nc.jetstream(), replicas=o.replicas)
        if o.api:
            self.api = ApiService(self.nc)
            await self.api.start()
        if o.engine:
            self.engine = Engine(self.nc)
            await self.engine.start()
        if o.triggers:
            await self._start_triggers(self.nc)
        if o.http:
            # One Operations for NATS and HTTP requests: one definitions cache and watch.
            ops: Operations | None = self.api.ops if self.api is not None else self._own_ops
            self.http = HttpGateway(
                self.nc,
                port=o.http_port,
                ready=lambda: self.ready,
                ops=ops,
                routers=trigger_routes(),
            )
            await self._trigger_services(self.http)
            await self.http.start()
        self.ready = True
        log.info(
            "dagnats serving on %s%s",
            self.nats_url,
            f", HTTP on {self.http.url}" if self.http else "",
        )

    async def _start_triggers(self, nc: NatsClient) -> None:
        """The trigger service, on the API service's trigger records (or, running alone as
        ``dagnats triggers``, on its own)."""
        if self.api is not None:
            self.trigger_ops = self.api.triggers
        else:
            self._own_ops = Operations(nc)
            await self._own_ops.open()
            self.trigger_ops = TriggerOps(self._own_ops)
            await self.trigger_ops.open()
        self.triggers = TriggerService(nc, self.trigger_ops)
        await self.triggers.start()

    async def _trigger_services(self, http: HttpGateway) -> None:
        """What the trigger routes need: the trigger records, the service (debounce) and
        the HTTP request/respond calls."""
        trigger_ops = self.trigger_ops or (self.api.triggers if self.api else None)
        if trigger_ops is None or self.nc is None:
            return
        self.http_calls = HttpCalls(self.nc, trigger_ops)
        await self.http_calls.open()
        services = {"triggers": trigger_ops, "http_calls": self.http_calls}
        if self.triggers is not None:
            services["trigger_service"] = self.triggers
        http.context.services.update(services)

    async def stop(self) -> None:
        self.ready = False
        if self.http is not None:
            await self.http.stop(timeout_s=5.0)
        if self.triggers is not None:
            await self.triggers.stop()
        if self._own_ops is not None and self.trigger_ops is not None:
            await self.trigger_ops.close()
            await self._own_ops.close()
        if self.engine is not None:
            await self.engine.stop()
        if self.api is not None:
            await self.api.stop()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5.0)
        if self.nats is not None:
            await self.nats.stop()


async def serve(opts: ServeOptions, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then shut down within the deadline."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    app = Serve(opts)
    try:
        await app.start()
        await stop.wait()
        log.info("shutting down")
    finally:
        try:
            await asyncio.wait_for(app.stop(), SHUTDOWN_DEADLINE_S)
        except TimeoutError:
            log.error("shutdown exceeded %.0fs; forcing exit", SHUTDOWN_DEADLINE_S)
            if app.nats is not None and app.nats.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(app.nats.pid, signal.SIGKILL)
            os._exit(1)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
