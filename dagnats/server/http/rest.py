"""REST over the API operations: the routes mirror the client (API.md "HTTP").

Each handler hands a body dict to the same :class:`~dagnats.server.operations.Operations`
method the ``dagnats.api`` micro service calls, so HTTP and NATS clients see one behaviour;
the response models only describe (and check) what the operations return.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime

from dagnats.dag.definition.models import WorkflowDef
from dagnats.protocol.names import DOTTED_NAME_PATTERN, MAX_NAME_LEN, NAME_PATTERN
from dagnats.server.http.bodies import BODY_MODELS, JsonBody, read_json, request_body_doc
from dagnats.server.http.context import Ctx
from dagnats.server.http.errors import error_responses
from dagnats.server.http.models import (
    ApprovalDecided,
    Deleted,
    EventPublished,
    ReasonRequest,
    RunCancelled,
    RunEvent,
    RunListItem,
    RunStarted,
    RunState,
    SignalSent,
    StartRunRequest,
    WorkflowDetail,
    WorkflowRegistered,
    WorkflowSummary,
)
from dagnats.server.operations import MAX_REVISION

EVENT_NAME_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"

router = APIRouter()

BODY_MODELS["WorkflowDef"] = WorkflowDef
DEFINITION_DOC = request_body_doc({"$ref": "#/components/schemas/WorkflowDef"}, required=True)
ANY_JSON_DOC = request_body_doc({"description": "Any JSON value (optional)."}, required=False)
START = JsonBody(StartRunRequest)
REASON = JsonBody(ReasonRequest, required=False)

AnyJson = Annotated[Any, Depends(read_json)]
# Path parameters with their alphabet: a name outside it is a 422 naming the parameter.
WorkflowName = Annotated[
    str,
    Path(
        pattern=DOTTED_NAME_PATTERN,
        max_length=MAX_NAME_LEN,
        description="A workflow name (dots allowed, as in `order.v2`).",
    ),
]
RunId = Annotated[str, Path(pattern=NAME_PATTERN, max_length=MAX_NAME_LEN)]
SignalName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=MAX_NAME_LEN)]
EventName = Annotated[str, Path(pattern=EVENT_NAME_PATTERN, max_length=255)]
Revision = Annotated[int | None, Query(ge=1, le=MAX_REVISION)]
Since = Annotated[AwareDatetime | None, Query(description="Only runs created since (RFC 3339).")]
MaxList = Query(100, ge=1, le=1000, description="At most this many runs, newest first.")


@router.post(
    "/workflows",
    status_code=201,
    tags=["workflows"],
    responses=error_responses(400),
    openapi_extra=DEFINITION_DOC,
)
async def register_workflow(ctx: Ctx, request: Request) -> WorkflowRegistered:
    """Register a workflow definition (the same definition again is a no-op)."""
    out = await ctx.ops.register_workflow({"definition": await read_json(request)})
    return WorkflowRegistered.model_validate(out)


@router.get("/workflows", tags=["workflows"], responses=error_responses())
async def list_workflows(ctx: Ctx) -> list[WorkflowSummary]:
    """Every registered workflow, by name (at most 1000)."""
    return [WorkflowSummary.model_validate(w) for w in await ctx.ops.list_workflows({})]


@router.get("/workflows/{name}", tags=["workflows"], responses=error_responses(400, 404))
async def get_workflow(
    ctx: Ctx,
    name: WorkflowName,
    revision: Annotated[int | None, Query(ge=1, le=MAX_REVISION)] = None,
) -> WorkflowDetail:
    """A workflow's definition (the latest, or ``revision``)."""
    body: dict[str, Any] = {"name": name, "revision": revision}
    return WorkflowDetail.model_validate(await ctx.ops.get_workflow(body))


@router.delete("/workflows/{name}", tags=["workflows"], responses=error_responses(400, 404))
async def delete_workflow(ctx: Ctx, name: WorkflowName) -> Deleted:
    """Delete a workflow; runs of it keep their pinned revision."""
    return Deleted.model_validate(await ctx.ops.delete_workflow({"name": name}))


@router.post(
    "/runs",
    status_code=201,
    tags=["runs"],
    responses=error_responses(400, 404, 409),
    openapi_extra=START.route_doc(),
)
async def start_run(ctx: Ctx, body: Annotated[StartRunRequest, Depends(START)]) -> RunStarted:
    """Start a run of a registered workflow."""
    out = await ctx.ops.start_run(body.model_dump(exclude_none=True) | {"input": body.input})
    return RunStarted.model_validate(out)


@router.get("/runs", tags=["runs"], responses=error_responses(400))
async def list_runs(
    ctx: Ctx,
    workflow: str | None = None,
    status: str | None = None,
    limit: int = MaxList,
    since: Since = None,
    scheduled: bool = False,
) -> list[RunListItem]:
    """Runs, newest first by creation time, optionally of one workflow and in one status;
    ``scheduled``: the runs waiting for their ``run_at``, soonest first."""
    when = None if since is None else since.isoformat()
    body = {
        "workflow": workflow,
        "status": status,
        "limit": limit,
        "since": when,
        "scheduled": scheduled,
    }
    out = await ctx.ops.list_runs(body)
    return [RunListItem.model_validate(r) for r in out]


@router.get(
    "/runs/{run_id}",
    tags=["runs"],
    responses=error_responses(400, 404),
    response_model_exclude_none=True,
)
async def get_run(ctx: Ctx, run_id: RunId) -> RunState:
    """A run's state as its history has it."""
    return RunState.model_validate(await ctx.ops.get_run({"run_id": run_id}))


@router.delete("/runs/{run_id}", tags=["runs"], responses=error_responses(400, 404, 409))
async def delete_run(ctx: Ctx, run_id: RunId, force: bool = False) -> Deleted:
    """Delete a finished run (``force``: cancel a live one first, then delete it)."""
    return Deleted.model_validate(await ctx.ops.delete_run({"run_id": run_id, "force": force}))


@router.get(
    "/runs/{run_id}/events",
    tags=["runs"],
    responses=error_responses(400, 404),
    response_model_exclude_none=True,
)
async def run_events(ctx: Ctx, run_id: RunId) -> list[RunEvent]:
    """A run's history, oldest first."""
    return [RunEvent.model_validate(e) for e in await ctx.ops.run_events({"run_id": run_id})]


@router.post(
    "/runs/{run_id}/cancel",
    tags=["runs"],
    responses=error_responses(400, 404),
    openapi_extra=REASON.route_doc(),
)
async def cancel_run(
    ctx: Ctx, run_id: RunId, body: Annotated[ReasonRequest, Depends(REASON)]
) -> RunCancelled:
    """Ask the engine to cancel a run (no-op on a finished one)."""
    out = await ctx.ops.cancel_run({"run_id": run_id, "reason": body.reason})
    return RunCancelled.model_validate(out)


@router.post(
    "/runs/{run_id}/signal/{name}",
    tags=["runs"],
    responses=error_responses(400),
    openapi_extra=ANY_JSON_DOC,
)
async def signal_run(ctx: Ctx, run_id: RunId, name: SignalName, data: AnyJson) -> SignalSent:
    """Send a signal (the body is its data) to a run; kept until a step waits for it."""
    out = await ctx.ops.interactions.signal_run({"run_id": run_id, "name": name, "data": data})
    return SignalSent.model_validate(out)


@router.post(
    "/events/{name}", tags=["events"], responses=error_responses(400), openapi_extra=ANY_JSON_DOC
)
async def publish_event(ctx: Ctx, name: EventName, data: AnyJson) -> EventPublished:
    """Publish an external event (the body is its data) for ``wait_for_event`` steps."""
    out = await ctx.ops.interactions.publish_event({"name": name, "data": data})
    return EventPublished.model_validate(out)


@router.post(
    "/approvals/{token}/approve",
    tags=["approvals"],
    responses=error_responses(409),
    openapi_extra=ANY_JSON_DOC,
)
async def approve(ctx: Ctx, token: str, data: AnyJson) -> ApprovalDecided:
    """Approve an approval step with its single-use token (the body is the step's output)."""
    out = await ctx.ops.interactions.approve({"token": token, "data": data})
    return ApprovalDecided.model_validate(out)


@router.post(
    "/approvals/{token}/reject",
    tags=["approvals"],
    responses=error_responses(409),
    openapi_extra=REASON.route_doc(),
)
async def reject(
    ctx: Ctx, token: str, body: Annotated[ReasonRequest, Depends(REASON)]
) -> ApprovalDecided:
    """Reject an approval step with its single-use token."""
    out = await ctx.ops.interactions.reject({"token": token, "reason": body.reason})
    return ApprovalDecided.model_validate(out)
