"""REST for triggers and scheduled runs (API.md "Triggers and scheduled runs").

``GET|POST /triggers``, ``GET|DELETE /triggers/{id}``, ``POST /triggers/{id}/enable|disable|
fire``, ``GET /triggers/{id}/history``; ``GET|DELETE /runs/{id}/scheduled``. The handlers
call the same :class:`~dagnats.server.trigger_ops.TriggerOps` the ``dagnats.api`` micro
service runs, so HTTP and NATS clients see one behaviour.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from dagnats.dag.definition.triggers import TriggerDef
from dagnats.errors import RunNotFoundError
from dagnats.server.http.bodies import BODY_MODELS, read_json, request_body_doc
from dagnats.server.http.context import Ctx, service
from dagnats.server.http.errors import error_responses
from dagnats.server.http.models import Deleted
from dagnats.server.trigger_ops import TriggerOps

router = APIRouter(tags=["triggers"])

BODY_MODELS["TriggerDef"] = TriggerDef
TRIGGER_DOC = request_body_doc({"$ref": "#/components/schemas/TriggerDef"}, required=True)
FIRE_DOC = request_body_doc({"description": "The envelope's data (optional)."}, required=False)
AnyJson = Annotated[Any, Depends(read_json)]


class TriggerInfo(TriggerDef):
    """A trigger, with what the trigger services know of it."""

    model_config = ConfigDict(extra="ignore")

    last_minute: int | None = None
    """The last cron minute fired (unix minutes)."""
    fires: int = 0
    """How many recent fires its history keeps."""


class TriggerFired(BaseModel):
    run_id: str
    workflow: str


class TriggerFireRecord(BaseModel):
    ts: datetime
    kind: str
    run_id: str | None = None
    minute: int | None = None
    error: str | None = None


class ScheduledRunInfo(BaseModel):
    run_id: str
    workflow: str
    revision: int | None = None
    status: str
    """``scheduled``, or ``cancelled`` when cancelled before it started."""
    input: Any = None
    created_at: datetime | None = None
    scheduled_at: datetime
    """When it starts."""


class ScheduledCancelled(BaseModel):
    run_id: str
    cancelled: bool


def _ops(ctx: Any) -> TriggerOps:
    ops: TriggerOps = service(ctx, "triggers")
    return ops


@router.get("/triggers", responses=error_responses())
async def list_triggers(ctx: Ctx, workflow: str | None = None) -> list[TriggerDef]:
    """Every trigger (of one workflow, with ``workflow``)."""
    rows = await _ops(ctx).list_all({"workflow": workflow})
    return [TriggerDef.model_validate(t) for t in rows]


@router.post(
    "/triggers",
    status_code=201,
    responses=error_responses(400, 404, 409),
    openapi_extra=TRIGGER_DOC,
)
async def create_trigger(ctx: Ctx, request: Request) -> TriggerDef:
    """Create a trigger (``id`` is made when absent). 400 names the field; 409 when the id,
    or the HTTP method and path, or the webhook path, is taken."""
    body = await read_json(request)
    return TriggerDef.model_validate(await _ops(ctx).create({"trigger": body}))


@router.get("/triggers/{trigger_id}", responses=error_responses(404))
async def get_trigger(ctx: Ctx, trigger_id: str) -> TriggerInfo:
    return TriggerInfo.model_validate(await _ops(ctx).show({"id": trigger_id}))


@router.delete("/triggers/{trigger_id}", responses=error_responses(404))
async def delete_trigger(ctx: Ctx, trigger_id: str) -> Deleted:
    return Deleted.model_validate(await _ops(ctx).delete({"id": trigger_id}))


@router.post("/triggers/{trigger_id}/enable", responses=error_responses(404, 409))
async def enable_trigger(ctx: Ctx, trigger_id: str) -> TriggerDef:
    return TriggerDef.model_validate(await _ops(ctx).enable({"id": trigger_id}))


@router.post("/triggers/{trigger_id}/disable", responses=error_responses(404, 409))
async def disable_trigger(ctx: Ctx, trigger_id: str) -> TriggerDef:
    return TriggerDef.model_validate(await _ops(ctx).disable({"id": trigger_id}))


@router.post(
    "/triggers/{trigger_id}/fire",
    responses=error_responses(404),
    openapi_extra=request_body_doc(
        {"description": "The envelope's data (optional)."}, required=False
    ),
)
async def fire_trigger(ctx: Ctx, trigger_id: str, data: AnyJson) -> TriggerFired:
    """Fire now, by hand: a run with ``trigger: "manual"`` (debounce does not apply)."""
    return TriggerFired.model_validate(await _ops(ctx).fire({"id": trigger_id, "data": data}))


@router.get("/triggers/{trigger_id}/history", responses=error_responses(404))
async def trigger_history(ctx: Ctx, trigger_id: str) -> list[TriggerFireRecord]:
    """Its recent fires, newest first (at most 50)."""
    rows = await _ops(ctx).history({"id": trigger_id})
    return [TriggerFireRecord.model_validate(r) for r in rows]


@router.get("/runs/{run_id}/scheduled", tags=["runs"], responses=error_responses(404))
async def get_scheduled(ctx: Ctx, run_id: str) -> ScheduledRunInfo:
    """A run that waits for its ``run_at`` (404 once it started, or if it never was)."""
    record = await ctx.ops.schedules.get(run_id)
    if record is None or record.state not in ("scheduled", "cancelled"):
        raise RunNotFoundError(f"run '{run_id}' is not a scheduled run waiting to start")
    return ScheduledRunInfo.model_validate(ctx.ops.schedules.as_state(record))


@router.delete("/runs/{run_id}/scheduled", tags=["runs"], responses=error_responses(404))
async def cancel_scheduled(ctx: Ctx, run_id: str) -> ScheduledCancelled:
    """Cancel a scheduled run before it starts (404 when it is not waiting to start)."""
    cancelled = await ctx.ops.schedules.cancel(run_id)
    if cancelled is None:
        raise RunNotFoundError(f"run '{run_id}' is not a scheduled run waiting to start")
    return ScheduledCancelled(run_id=run_id, cancelled=cancelled)
