"""``/health`` (NATS and JetStream answer) and ``/ready`` (every part started): public, for
probes and load balancers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from dagnats.server.http.context import Ctx
from dagnats.server.http.models import Health, Ready

router = APIRouter(tags=["health"])

HEALTH_TIMEOUT_S = 2.0


@router.get("/health", responses={503: {"model": Health, "description": "NATS is down"}})
async def health(ctx: Ctx, response: Response) -> Health:
    """200 when the NATS connection is up and JetStream answers, else 503."""
    ok = ctx.nc.is_connected
    js_ok = False
    if ok:
        try:
            await asyncio.wait_for(ctx.nc.jetstream().account_info(), HEALTH_TIMEOUT_S)
            js_ok = True
        except Exception:  # noqa: BLE001 - a health probe: any failure means down
            js_ok = False
    body = Health(nats=ok, jetstream=js_ok, status="ok" if ok and js_ok else "down")
    if body.status != "ok":
        response.status_code = 503
    return body


@router.get("/ready", responses={503: {"model": Ready, "description": "Not (or no longer) ready"}})
async def ready(ctx: Ctx, response: Response) -> Ready:
    """200 once every part of the process has started; 503 while starting or stopping."""
    is_ready = ctx.ready()
    if not is_ready:
        response.status_code = 503
    return Ready(ready=is_ready)
