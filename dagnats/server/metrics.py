"""``GET /metrics``: the process's Prometheus series, on the HTTP app and on its own port.

``serve`` includes :data:`router` in its app (behind the same bearer token as REST);
``dagnats engine --metrics-port`` and ``dagnats worker --metrics-port`` run a
:class:`MetricsServer` with only this route. ``dagnats_tasks_pending`` is read from the
work queue at each scrape (one stream-info request), when the process has a connection.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, FastAPI, Response

from dagnats import protocol
from dagnats._nats import overview
from dagnats._nats.types import JetStreamContext
from dagnats.server.http.context import Ctx
from dagnats.server.http.server import _Server, serve_app, stop_app
from dagnats.telemetry.metrics import exposition, set_pending

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
WHAT = "metrics server"
router = APIRouter(tags=["observability"])


async def refresh_pending(js: JetStreamContext) -> None:
    """Set ``dagnats_tasks_pending`` from the work queue: every task with a durable
    consumer (0 when its queue is empty) plus every subject holding messages."""
    pairs = [(d.task, d.messages) for d in await overview.queue_depths(js)]
    for c in await overview.consumers(js, protocol.TASK_STREAM):
        if c.filter_subject:
            pairs.append((c.filter_subject.split(".")[1], 0))
    set_pending(pairs)


async def render(js: JetStreamContext | None) -> Response:
    if js is not None:
        try:
            await refresh_pending(js)
        except Exception as exc:  # noqa: BLE001 - a scrape still answers with what it has
            log.warning("dagnats_tasks_pending not refreshed: %s", exc)
    body, content_type = exposition()
    return Response(body, media_type=content_type)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(ctx: Ctx) -> Response:
    """Prometheus text format: runs, steps, retries, dead letters, queue depths, timer lag."""
    return await render(ctx.nc.jetstream())


class MetricsServer:
    """Only ``GET /metrics`` on ``host:port`` (``port=0``: a free one, known after start)."""

    def __init__(
        self, port: int, *, host: str = "127.0.0.1", js: JetStreamContext | None = None
    ) -> None:
        self.host, self.port = host, port
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.get("/metrics")
        async def scrape() -> Response:
            return await render(js)

        self.app = app
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._server, self._task = await serve_app(self.app, self.host, self.port, WHAT)
        self.port = self._server.port
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            await stop_app(self._server, self._task, START_TIMEOUT_S, WHAT)
        self._server = self._task = None
