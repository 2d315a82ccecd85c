"""A trigger service and the HTTP app with the trigger routes, beside a ``DagnatsEnv``.

Composed as ``serve`` composes them (``Serve._trigger_services``), on the env's API service,
so tests reach triggers through the client, the CLI and real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from dagnats.server.http import HttpGateway, hooks
from dagnats.server.http_calls import HttpCalls
from dagnats.server.serve import trigger_routes
from dagnats.server.trigger_ops import TriggerOps
from dagnats.server.triggers import TriggerService
from dagnats.testing import DagnatsEnv


@dataclass
class TriggerStack:
    ops: TriggerOps
    service: TriggerService
    http: HttpGateway


@contextlib.asynccontextmanager
async def trigger_stack(
    env: DagnatsEnv, *, now: Callable[[], datetime] | None = None, http: bool = True
) -> AsyncIterator[TriggerStack]:
    """The trigger service (clock ``now``) and, with ``http``, the gateway on a free port."""
    if env.api is None:
        raise RuntimeError("the env runs no API service")
    ops = env.api.triggers
    service = TriggerService(env.nc, ops, now=now)
    await service.start()
    gw = HttpGateway(env.nc, port=0, ops=env.api.ops, routers=trigger_routes())
    calls = HttpCalls(env.nc, ops)
    await calls.open()
    gw.context.services.update(
        {
            "triggers": ops,
            "trigger_service": service,
            "http_calls": calls,
            "openapi_paths": lambda: hooks.http_trigger_paths(ops),
        }
    )
    if http:
        await gw.start()
    try:
        yield TriggerStack(ops, service, gw)
    finally:
        if http:
            await gw.stop()
        await service.stop()


@contextlib.asynccontextmanager
async def second_service(
    env: DagnatsEnv, *, now: Callable[[], datetime] | None = None
) -> AsyncIterator[TriggerService]:
    """Another trigger service, with its own trigger records and index, on the same NATS."""
    if env.api is None:
        raise RuntimeError("the env runs no API service")
    ops = TriggerOps(env.api.ops)
    env.api.ops.triggers = env.api.triggers  # TriggerOps() took the hook; give it back
    await ops.open()
    service = TriggerService(env.nc, ops, now=now)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        await ops.close()


async def declared_too_big(gw: HttpGateway, path: str, size: int) -> int:
    """POST with a declared ``Content-Length`` of ``size`` and no body: the status (a raw
    socket: httpx would send the body, and the server answers before reading it)."""
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
        writer.write(head.encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10.0)
    finally:
        writer.close()
    return int(data.split()[1])
