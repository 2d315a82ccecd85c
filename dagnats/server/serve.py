"""``dagnats serve``: embedded NATS, resources, API, engine and the HTTP API.

Start-up and shutdown follow ``seeds/003``: started in order, stopped in reverse within a
hard deadline (15 s); past it the nats-server child is killed and the process exits.

Nothing listens beyond loopback without auth: a non-loopback ``host`` needs NATS
credentials (user/password or token) and a non-loopback ``http_host`` an HTTP token;
:func:`check_exposure` refuses the options before anything starts.

A feature with HTTP routes starts its service in :meth:`Serve.start` before the HTTP API
and appends to ``self.routes`` (and ``self.services``): the app is built last, from both.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import signal
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagnats._nats.closing import close_within
from dagnats._nats.connection import NatsAuth
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.resources import setup_resources
from dagnats._nats.types import NatsClient
from dagnats.engine import Engine
from dagnats.errors import ServerError
from dagnats.server import console
from dagnats.server.api import ApiService
from dagnats.server.bridge import SERVICE as BRIDGE
from dagnats.server.bridge import Bridge
from dagnats.server.bridge import router as bridge_router
from dagnats.server.health import Health, connection_probe
from dagnats.server.http import HttpGateway, Routes, hooks
from dagnats.server.http import redrive as redrive_http
from dagnats.server.http import triggers as trigger_rest
from dagnats.server.http.auth import check_token
from dagnats.server.http_calls import HttpCalls
from dagnats.server.metrics import MetricsServer
from dagnats.server.metrics import router as metrics_router
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
    retention_s: float | None = None
    """Finished runs are removed this long after they finished (``None``: kept)."""
    agent_routes: dict[str, str] = field(default_factory=dict)
    """``metadata.role`` -> worker group of ``agent`` steps (``"*"``: any role)."""
    partitions: int | None = None
    """History partitions when the stream is created (``None``: the default, or the
    existing stream's); asking another count than an existing stream's is an error."""
    engine_id: str | None = None
    """The engine's name in the partition leases (ADR 0013). ``None``: ``serve-<host>``
    with an embedded server (one per data dir, so a restart takes its partitions back at
    once), else a fresh random id."""
    engine: bool = True
    api: bool = True
    http: bool = True
    host: str = "127.0.0.1"
    """Address the embedded NATS (and, unless ``http_host``, the HTTP API) listens on."""
    http_host: str | None = None
    """Address of the HTTP API [default: ``host``]."""
    http_token: str | None = None
    """Bearer token the HTTP API asks for (required off loopback)."""
    nats_auth: NatsAuth = field(default_factory=NatsAuth.from_env)
    """Credentials of the embedded server, and of this process's own connection."""
    metrics_port: int | None = None
    """A port for ``GET /metrics`` alone (``dagnats engine --metrics-port``)."""
    triggers: bool = True
    """Run the trigger service (cron, subject triggers, debounce)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(opts: ServeOptions) -> None:
    """Refuse to listen beyond loopback without auth; ServerError naming the option."""
    try:
        opts.nats_auth.check()
        if opts.http_token is not None:
            check_token(opts.http_token)
    except ValueError as exc:
        raise ServerError(str(exc)) from exc
    http_host = opts.http_host or opts.host
    if opts.http and not is_loopback(http_host) and not opts.http_token:
        raise ServerError(
            f"refusing to serve HTTP on {http_host} without auth: set --http-token (or "
            "DAGNATS_HTTP_TOKEN), or bind 127.0.0.1"
        )
    embedded = opts.nats_url is None
    if embedded and not is_loopback(opts.host) and not opts.nats_auth.authenticates:
        raise ServerError(
            f"refusing to serve NATS on {opts.host} without auth: set --nats-user and "
            "--nats-password, or --nats-token (or DAGNATS_NATS_USER/_PASSWORD/_TOKEN), or "
            "bind 127.0.0.1"
        )


def http_routes() -> list[Routes]:
    """The features' routers that ``serve`` adds to the HTTP app: redrive's, /metrics, the
    console and the triggers'."""
    return [redrive_http.ROUTES, Routes(metrics_router), *console.routes(), *trigger_routes()]


def trigger_routes() -> list[Routes]:
    """The trigger routers: webhooks and HTTP triggers check their own secrets (public);
    the trigger REST wants the bearer token like the rest of the API."""
    return [Routes(hooks.router, public=True), Routes(trigger_rest.router)]


class Serve:
    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        # Routes and services features add before the HTTP API starts (module docstring).
        self.routes: list[Routes] = []
        self.services: dict[str, Any] = {}
        self.nats: EmbeddedNats | None = None
        self.nc: NatsClient | None = None
        self.engine: Engine | None = None
        self.api: ApiService | None = None
        self.http: HttpGateway | None = None
        self.bridge: Bridge | None = None
        self.metrics: MetricsServer | None = None
        self.triggers: TriggerService | None = None
        self.http_calls: HttpCalls | None = None
        self.trigger_ops: TriggerOps | None = None
        self._own_ops: Operations | None = None  # the trigger service's, without an API
        self.ready = False
        # Each part's live health (/ready follows it) and, once set, why serve must exit.
        self.health = Health()
        self.fatal: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._watch: asyncio.Task[None] | None = None

    @property
    def nats_url(self) -> str:
        return self.opts.nats_url or (self.nats.url if self.nats else "")

    async def start(self) -> None:
        o = self.opts
        check_exposure(o)
        if o.nats_url is None:
            data_dir = o.data_dir or default_data_dir()
            self.nats = EmbeddedNats(
                port=o.port,
                data_dir=data_dir,
                binary=o.nats_server,
                host=o.host,
                leaf_remotes=list(o.leaf_remotes),
                auth=o.nats_auth,
            )
            await self.nats.start()
            self._watch = asyncio.create_task(self._watch_nats_server(self.nats))
        self.nc = await connect_nats(
            self.nats_url, max_reconnect_attempts=-1, auth=o.nats_auth, closed_cb=self._closed
        )
        self.health.add("nats", connection_probe(self.nc))
        await setup_resources(self.nc.jetstream(), replicas=o.replicas, partitions=o.partitions)
        if o.api:
            self.api = ApiService(self.nc)
            await self.api.start()
            api = self.api
            self.health.add("api", lambda: (api.running, "serving dagnats.api.>"))
        if o.engine:
            self.engine = Engine(
                self.nc,
                retention_s=o.retention_s,
                engine_id=self._engine_id(),
                agent_routes=o.agent_routes,
            )
            await self.engine.start()
            engine = self.engine
            self.health.add("engine", lambda: (engine.running, "consuming the history"))
        if o.triggers:
            await self._start_triggers(self.nc)
        if o.http:
            await self._trigger_services(self.nc)
            self.bridge = Bridge(self.nc)
            await self.bridge.start()
            self.services[BRIDGE] = self.bridge
            self.routes.append(Routes(bridge_router))
            # One Operations for NATS and HTTP requests: one definitions cache and watch.
            ops: Operations | None = self.api.ops if self.api is not None else self._own_ops
            self.http = HttpGateway(
                self.nc,
                host=o.http_host or o.host,
                port=o.http_port,
                ready=lambda: self.ready and self.health.ready(),
                ops=ops,
                token=o.http_token,
                routers=[*http_routes(), *self.routes],
                services=self.services,
            )
            await self.http.start()
            http = self.http
            self.health.add("http", lambda: (http.running, f"serving {http.url}"))
        if o.metrics_port is not None:
            self.metrics = MetricsServer(o.metrics_port, js=self.nc.jetstream())
            await self.metrics.start()
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

    async def _trigger_services(self, nc: NatsClient) -> None:
        """What the trigger routes need (``services``): the trigger records, the trigger
        service (debounce) and the HTTP request/respond calls."""
        trigger_ops = self.trigger_ops or (self.api.triggers if self.api else None)
        if trigger_ops is None:
            return
        self.http_calls = HttpCalls(nc, trigger_ops)
        await self.http_calls.open()
        self.services.update(
            {
                "triggers": trigger_ops,
                "http_calls": self.http_calls,
                "openapi_paths": lambda: hooks.http_trigger_paths(trigger_ops),
            }
        )
        if self.triggers is not None:
            self.services["trigger_service"] = self.triggers

    def _fail(self, reason: str) -> None:
        if not self.fatal.done() and self.ready:
            log.error("%s: shutting down to exit non-zero", reason)
            self.fatal.set_result(reason)

    async def _closed(self) -> None:
        # nats-py closes a connection for good on some server errors; nothing reconnects it.
        self._fail("the NATS connection was closed for good")

    async def _watch_nats_server(self, server: EmbeddedNats) -> None:
        rc = await server.wait()
        self._fail(f"the embedded nats-server exited (code {rc})")

    def _engine_id(self) -> str | None:
        o = self.opts
        if o.engine_id is not None or o.nats_url is not None:
            return o.engine_id
        return "serve-" + re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:100]

    async def stop(self) -> None:
        self.ready = False
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.metrics is not None:
            await self.metrics.stop()
        if self.bridge is not None:
            self.bridge.pause()  # long polls return now instead of holding up the HTTP stop
        if self.http is not None:
            await self.http.stop(timeout_s=5.0)
        # After a fatal error the connection may be gone: each part still gets its stop.
        if self.bridge is not None:
            await self.bridge.stop()  # HTTP workers' tasks go back to the queues
        if self.triggers is not None:
            await self.triggers.stop()
        if self._own_ops is not None and self.trigger_ops is not None:
            await self.trigger_ops.close()
            await self._own_ops.close()
        if self.engine is not None:
            await _stop_part("engine", self.engine.stop())
        if self.api is not None:
            await _stop_part("API", self.api.stop())
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await close_within(self.nc, drain=True)
        if self.nats is not None:
            await self.nats.stop()


async def _stop_part(name: str, stopping: Coroutine[Any, Any, None]) -> None:
    try:
        await stopping
    except Exception as exc:  # noqa: BLE001 - shutting down: the rest must still stop
        log.warning("stopping the %s failed: %s", name, exc)


async def serve(opts: ServeOptions, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then shut down within the deadline."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    app = Serve(opts)
    waiting: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await app.start()
        either: set[asyncio.Future[Any]] = {waiting, app.fatal}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
    finally:
        waiting.cancel()
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
    if app.fatal.done():
        raise ServerError(app.fatal.result())  # the CLI exits 1 with this line
