"""Serving the app with uvicorn inside a running event loop (``serve``, tests).

uvicorn's ``Server.serve`` would install its own SIGINT/SIGTERM handlers, taking them from
``serve``, which owns the shutdown order; here it installs none. The socket is bound first,
so ``port=0`` gives a free port that is known before :meth:`HttpGateway.start` returns, and a
port in use is a clear error instead of uvicorn's ``sys.exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Generator, Sequence
from typing import Any

import uvicorn

from dagnats._nats.types import NatsClient
from dagnats.errors import ServerError
from dagnats.server.http.app import Routes, create_app
from dagnats.server.http.context import HttpContext
from dagnats.server.operations import Operations

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 5.0
START_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    """uvicorn without signal handlers, telling when it has started."""

    def __init__(self, config: uvicorn.Config, port: int) -> None:
        super().__init__(config)
        self.up = asyncio.Event()
        self.port = port  # the bound one (a free port when 0 was asked)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.up.set()


async def serve_app(
    app: Any, host: str, port: int, what: str
) -> tuple[_Server, asyncio.Task[None]]:
    """Serve ``app`` with uvicorn on ``host:port`` inside this event loop; return once it
    listens (``ServerError`` naming ``what`` if it does not within ``START_TIMEOUT_S``)."""
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        log_config=None,  # keep the process's logging as it is
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
        server_header=False,
    )
    server = _Server(config, int(sock.getsockname()[1]))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    up = asyncio.create_task(server.up.wait())
    done, _ = await asyncio.wait(
        {task, up}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
    )
    if up not in done:
        up.cancel()
        await stop_app(server, task, GRACEFUL_SHUTDOWN_S + 1, what)
        raise ServerError(f"the {what} on {host}:{server.port} did not start")
    return server, task


async def stop_app(server: _Server, task: asyncio.Task[None], timeout_s: float, what: str) -> None:
    """Ask uvicorn to finish its requests and wait for it, at most ``timeout_s``."""
    server.should_exit = True
    try:
        await asyncio.wait_for(task, timeout_s)
    except TimeoutError:
        log.warning("%s did not stop within %.0fs", what, timeout_s)


class HttpGateway:
    """The HTTP API on ``host:port`` (``port=0``: a free one, in :attr:`port` after start).

    Uses ``ops`` when given (``serve`` shares the API service's), else opens its own.
    """

    def __init__(
        self,
        nc: NatsClient,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        ready: Callable[[], bool] = lambda: True,
        ops: Operations | None = None,
        token: str | None = None,
        routers: Sequence[Routes] = (),
        services: dict[str, Any] | None = None,
    ) -> None:
        self.nc = nc
        self.host, self.port = host, port
        self._own_ops = ops is None
        self.context = HttpContext(
            nc=nc, ops=ops or Operations(nc), ready=ready, services=dict(services or {})
        )
        self.app = create_app(self.context, token=token, routers=routers)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._own_ops:
            await self.context.ops.open()
        self._server, self._task = await serve_app(self.app, self.host, self.port, "HTTP server")
        self.port = self._server.port
        log.info("HTTP API on %s", self.url)

    @property
    def running(self) -> bool:
        """Whether uvicorn is serving (started, and its task has not ended)."""
        return self._task is not None and not self._task.done()

    async def stop(self, timeout_s: float = GRACEFUL_SHUTDOWN_S + 1) -> None:
        if self._server is not None and self._task is not None:
            await stop_app(self._server, self._task, timeout_s, "HTTP server")
            self._server = self._task = None
        if self._own_ops:
            await self.context.ops.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock
