"""A small HTTP gateway on asyncio streams: health, readiness, and REST over the client.

No web framework: the gateway is a thin translator from HTTP to the API service, so a
dependency for it would cost more than the ~200 lines here. HTTP/1.1, one request per
connection, bodies up to 1 MiB, JSON in and out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from dagnats._nats.types import NatsClient
from dagnats._version import __version__
from dagnats.client import Client
from dagnats.errors import DagnatsError
from dagnats.server.api import error_code

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_HEADER_LINES = 100
READ_TIMEOUT_S = 10.0
REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Route = Callable[[dict[str, str], Any], Awaitable[tuple[int, Any]]]


class HttpGateway:
    def __init__(
        self,
        nc: NatsClient,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.nc = nc
        self.client = Client(nc)
        self.host, self.port = host, port
        self.is_ready = ready
        self._server: asyncio.Server | None = None
        self.routes: list[tuple[str, re.Pattern[str], Route]] = [
            ("GET", re.compile(r"^/health$"), self._health),
            ("GET", re.compile(r"^/ready$"), self._ready),
            ("GET", re.compile(r"^/openapi\.json$"), self._openapi),
            (
                "POST",
                re.compile(r"^/workflows$"),
                lambda p, b: self._op("workflow.register", {"definition": b}, 201),
            ),
            ("GET", re.compile(r"^/workflows$"), lambda p, b: self._op("workflow.list", {})),
            (
                "GET",
                re.compile(r"^/workflows/(?P<name>[^/]+)$"),
                lambda p, b: self._op("workflow.get", {"name": p["name"]}),
            ),
            ("POST", re.compile(r"^/runs$"), lambda p, b: self._op("run.start", b or {}, 201)),
            ("GET", re.compile(r"^/runs$"), lambda p, b: self._op("run.list", p)),
            (
                "GET",
                re.compile(r"^/runs/(?P<run_id>[^/]+)$"),
                lambda p, b: self._op("run.get", {"run_id": p["run_id"]}),
            ),
            (
                "GET",
                re.compile(r"^/runs/(?P<run_id>[^/]+)/events$"),
                lambda p, b: self._op("run.events", {"run_id": p["run_id"]}),
            ),
            (
                "POST",
                re.compile(r"^/runs/(?P<run_id>[^/]+)/cancel$"),
                lambda p, b: self._op(
                    "run.cancel", {"run_id": p["run_id"], "reason": (b or {}).get("reason")}
                ),
            ),
            (
                "POST",
                re.compile(r"^/runs/(?P<run_id>[^/]+)/signal/(?P<name>[^/]+)$"),
                lambda p, b: self._op(
                    "run.signal", {"run_id": p["run_id"], "name": p["name"], "data": b}
                ),
            ),
            (
                "POST",
                re.compile(r"^/events/(?P<name>[^/]+)$"),
                lambda p, b: self._op("event.publish", {"name": p["name"], "data": b}),
            ),
            (
                "POST",
                re.compile(r"^/approvals/(?P<token>[^/]+)/approve$"),
                lambda p, b: self._op("approval.approve", {"token": p["token"], "data": b}),
            ),
            (
                "POST",
                re.compile(r"^/approvals/(?P<token>[^/]+)/reject$"),
                lambda p, b: self._op(
                    "approval.reject", {"token": p["token"], "reason": (b or {}).get("reason")}
                ),
            ),
        ]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._conn, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])
        log.info("HTTP gateway on http://%s:%d", self.host, self.port)

    async def stop(self, timeout_s: float = 5.0) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout_s)
            self._server = None

    async def _health(self, p: dict[str, str], b: Any) -> tuple[int, Any]:
        ok = self.nc.is_connected
        js_ok = False
        if ok:
            try:
                await asyncio.wait_for(self.nc.jetstream().account_info(), 2.0)
                js_ok = True
            except Exception:  # noqa: BLE001 - a health probe: any failure means down
                js_ok = False
        status = 200 if ok and js_ok else 503
        return status, {"nats": ok, "jetstream": js_ok, "status": "ok" if status == 200 else "down"}

    async def _ready(self, p: dict[str, str], b: Any) -> tuple[int, Any]:
        ready = self.is_ready()
        return (200 if ready else 503), {"ready": ready}

    async def _openapi(self, p: dict[str, str], b: Any) -> tuple[int, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for method, pattern, _ in self.routes:
            path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.pattern.strip("^$"))
            path = path.replace("\\.", ".")
            paths.setdefault(path, {})[method.lower()] = {
                "responses": {"200": {"description": "OK"}}
            }
        return 200, {
            "openapi": "3.0.3",
            "info": {"title": "dagnats", "version": __version__},
            "paths": paths,
        }

    async def _op(self, op: str, body: dict[str, Any], ok: int = 200) -> tuple[int, Any]:
        try:
            return ok, await self.client.call(op, body)
        except DagnatsError as exc:
            return error_code(exc), {"error": {"kind": type(exc).__name__, "message": str(exc)}}

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, payload = await asyncio.wait_for(self._handle(reader), READ_TIMEOUT_S * 3)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except Exception as exc:
            log.exception("HTTP request failed")
            status, payload = 500, {"error": {"kind": "ApiError", "message": str(exc)}}
        data = json.dumps(payload, default=str).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + data)
            await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, Any]:
        line = (await asyncio.wait_for(reader.readline(), READ_TIMEOUT_S)).decode("latin-1")
        parts = line.split()
        if len(parts) < 2:
            return 400, {"error": {"kind": "ApiError", "message": "malformed request line"}}
        method, target = parts[0].upper(), parts[1]
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            h = (await asyncio.wait_for(reader.readline(), READ_TIMEOUT_S)).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            return 413, {"error": {"kind": "ApiError", "message": f"body over {MAX_BODY} bytes"}}
        raw = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT_S) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError as exc:
            return 400, {"error": {"kind": "ApiError", "message": f"invalid JSON body: {exc}"}}
        path, _, query = target.partition("?")
        params = dict(q.split("=", 1) for q in query.split("&") if "=" in q)
        allowed = False
        for m, pattern, route in self.routes:
            match = pattern.match(path)
            if match:
                allowed = True
                if m == method:
                    return await route({**params, **match.groupdict()}, body)
        if allowed:
            return 405, {
                "error": {"kind": "ApiError", "message": f"{method} not allowed on {path}"}
            }
        return 404, {"error": {"kind": "NotFoundError", "message": f"no route for {path}"}}
