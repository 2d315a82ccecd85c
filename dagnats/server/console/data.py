"""The console's JSON API (``/console/api/...``), behind the same bearer token as REST.

Each route answers one page of the console with everything it draws, through a ``Client``
on the process's connection (so it sees exactly what the CLI sees, redrive included) and
the seam's read-only views (worker directory, queues, logs). Lists are bounded.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from dagnats.client import Client
from dagnats.client.diagnosis import diagnose_run, system_status
from dagnats.client.waits import approval_json, run_waits
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.picture import layers
from dagnats.errors import ApiError
from dagnats.protocol.events import Event
from dagnats.server.http.context import Ctx, HttpContext
from dagnats.server.http.errors import error_responses

MAX_RUNS = 500
MAX_EVENTS = 500  # the newest events of a run's timeline
MAX_REVISIONS = 64  # the definition store keeps this many per workflow

router = APIRouter(prefix="/console/api", tags=["console"], responses=error_responses(400, 404))


def client_of(ctx: HttpContext) -> Client:
    """A client borrowing the process's connection (not closed after the request)."""
    return Client(ctx.nc)


class SignalBody(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    """The signal's name, as in ``ctx.wait_for_signal(name)``."""
    data: Any = None
    """Any JSON value."""


class DecisionBody(BaseModel):
    data: Any = None
    """What an approval hands to the run (approve)."""
    reason: str | None = Field(default=None, max_length=4096)
    """Why (reject)."""


@router.get("/runs")
async def runs(
    ctx: Ctx,
    workflow: str | None = None,
    status: str | None = None,
    since: Annotated[datetime | None, Query(description="Only runs created after this.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS)] = 100,
) -> list[dict[str, Any]]:
    """Runs, newest first, filtered by workflow, status and creation time."""
    rows = await client_of(ctx).list_runs(
        workflow=workflow or None, status=status or None, limit=limit
    )
    if since is not None:
        cutoff = since if since.tzinfo else since.replace(tzinfo=UTC)
        rows = [r for r in rows if (t := _when(r.created_at)) is not None and t >= cutoff]
    return [asdict(r) for r in rows]


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def graph_of(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps as nodes of the drawing: id, type, task, edges and layer."""
    defn = load_definition(definition)
    depth = layers(defn)
    return [
        {
            "id": s.id,
            "type": s.type,
            "task": s.task,
            "depends_on": s.depends_on,
            "on_failure": s.on_failure,
            "compensate": s.compensate,
            "worker_group": s.worker_group,
            "layer": depth[s.id],
        }
        for s in defn.steps
    ]


@router.get("/runs/{run_id}")
async def run(ctx: Ctx, run_id: str) -> dict[str, Any]:
    """A run's page: its state, graph, newest events, pending approvals, what holds it up,
    and its handlers' logs."""
    client = client_of(ctx)
    state = await client.get_run(run_id)
    found = await client.get_workflow(state.workflow, state.revision)
    raw = await client.call("run.events", {"run_id": state.run_id})
    history = [Event.model_validate(r) for r in raw[-MAX_EVENTS:]]
    stuck = await diagnose_run(client.js, found["definition"], state)
    logs = await client.run_logs(state.run_id)
    return {
        "state": state.model_dump(mode="json"),
        "graph": graph_of(found["definition"]),
        "events": [e.model_dump(mode="json", exclude_none=True) | {"seq": e.seq} for e in history],
        "events_total": len(raw),
        "approvals": [approval_json(a) for a in run_waits(state, history).approvals],
        "stuck": [u.message for u in stuck],
        "logs": {k: v.model_dump(mode="json") for k, v in logs.items()},
    }


@router.post("/runs/{run_id}/cancel")
async def cancel(ctx: Ctx, run_id: str) -> dict[str, Any]:
    return {"cancelled": await client_of(ctx).cancel(run_id, "cancelled from the console")}


@router.post("/runs/{run_id}/retry")
async def retry(ctx: Ctx, run_id: str) -> dict[str, Any]:
    """Resume a failed run in place from its failed steps (``Client.retry_run``)."""
    handle = await client_of(ctx).retry_run(run_id, reason="retried from the console")
    return {"run_id": handle.run_id}


@router.post("/runs/{run_id}/signal")
async def signal(ctx: Ctx, run_id: str, body: SignalBody) -> dict[str, Any]:
    await client_of(ctx).send_signal(run_id, body.name, body.data)
    return {"sent": body.name}


@router.post("/approvals/{token}/approve")
async def approve(ctx: Ctx, token: str, body: DecisionBody) -> dict[str, Any]:
    await client_of(ctx).approve(token, body.data)
    return {"approved": True}


@router.post("/approvals/{token}/reject")
async def reject(ctx: Ctx, token: str, body: DecisionBody) -> dict[str, Any]:
    await client_of(ctx).reject(token, body.reason)
    return {"rejected": True}


@router.get("/workflows")
async def workflows(ctx: Ctx) -> list[dict[str, Any]]:
    return [asdict(w) for w in await client_of(ctx).list_workflows()]


@router.get("/workflows/{name}")
async def workflow(ctx: Ctx, name: str, revision: int | None = None) -> dict[str, Any]:
    """A workflow's definition and graph (latest, or ``revision``) and its revisions."""
    client = client_of(ctx)
    found = await client.get_workflow(name, revision)
    latest = (
        found["revision"] if revision is None else (await client.get_workflow(name))["revision"]
    )
    first = max(1, latest - MAX_REVISIONS + 1)
    return {
        "name": name,
        "revision": found["revision"],
        "revisions": list(range(latest, first - 1, -1)),
        "definition": found["definition"],
        "graph": graph_of(found["definition"]),
    }


@router.get("/dead-letters")
async def dead_letters(
    ctx: Ctx, run_id: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    letters = await client_of(ctx).list_dead_letters(run_id=run_id or None, limit=limit)
    return [asdict(d) for d in letters]


@router.post("/dead-letters/{seq}/replay")
async def replay(ctx: Ctx, seq: int) -> dict[str, Any]:
    out = await client_of(ctx).replay_dead_letter(seq)
    return {"replayed": seq, "run_id": out.run_id}


@router.get("/system")
async def system(ctx: Ctx) -> dict[str, Any]:
    """Engines, workers and the tasks they serve, queue depths, dead letters."""
    return (await system_status(ctx.nc.jetstream())).to_json()


@router.get("/triggers")
async def triggers(ctx: Ctx) -> list[dict[str, Any]]:
    """The triggers, from the trigger API (``trigger.list``); 503 naming it when this dagnats
    serves no trigger API."""
    try:
        out: list[dict[str, Any]] = await client_of(ctx).call("trigger.list", {})
    except ApiError as exc:
        if exc.code != 503:
            raise
        raise ApiError(f"no trigger API answers (trigger.list): {exc}", code=503) from exc
    return out
