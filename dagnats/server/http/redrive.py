"""REST for redrive and bulk operations (API.md "Redrive, retries of whole runs, bulk").

``POST /runs/{run_id}/retry``, ``POST /runs/{run_id}/rerun``, ``POST /runs/batch``,
``POST /runs/cancel``, ``GET /dead-letters``, ``POST /dead-letters/{seq}/replay``,
``POST /runs/{run_id}/dead-letters/replay`` and ``GET /runs/resolve/{prefix}``. Each hands
its body to the same :class:`~dagnats.server.redrive.Redrive` / :class:`~dagnats.server.bulk.
Bulk` method the ``dagnats.api`` micro service calls; ``run_id`` in a path may be an
unambiguous prefix of 8+ characters. ``serve`` plugs :data:`ROUTES` into the app.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from dagnats.server.bulk import MAX_BATCH, Bulk
from dagnats.server.http.app import Routes
from dagnats.server.http.bodies import JsonBody
from dagnats.server.http.context import Ctx
from dagnats.server.http.errors import error_responses
from dagnats.server.http.models import RunStarted
from dagnats.server.redrive import Redrive

router = APIRouter(tags=["redrive"])


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = None
    """Recorded in the run's ``workflow.retry_requested`` event."""


class RetryDone(BaseModel):
    run_id: str
    retry: int
    """The run's retry count now (1 after its first retry)."""
    status: str
    """The run's status once the engine applied the retry (``running``, or already ended)."""
    steps: list[str]
    """The steps that run again (failed or cancelled when the run was retried)."""
    dead_letters_removed: list[int]
    """Dead letters of those steps, removed: their work is being done again."""


class RerunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str | None = None
    """A second rerun with the same key returns the first rerun."""
    new_run_id: str | None = None
    """Choose the new run's id (1-128 of ``[A-Za-z0-9_-]``)."""


class RerunStarted(RunStarted):
    rerun_of: str
    """The run this one repeats."""


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(min_length=1)
    """Name of a registered workflow."""
    inputs: list[Any] = Field(max_length=MAX_BATCH)
    """One run input per run to start (at most 1000)."""
    idempotency_keys: list[str | None] | None = None
    """A key per input (``null`` for none), as long as ``inputs``."""
    revision: int | None = None
    """Start this revision instead of the latest."""


class BatchItem(BaseModel):
    index: int
    """The input's position in ``inputs``."""
    run_id: str | None = None
    duplicate: bool = False
    error: dict[str, str] | None = None
    """``{"kind", "message"}`` when this input was refused."""


class BatchStarted(BaseModel):
    results: list[BatchItem]
    started: int
    failed: int


class CancelManyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str | None = None
    status: str | None = None
    """``scheduled``, ``pending`` or ``running`` (default: all three)."""
    run_ids: list[str] | None = Field(default=None, max_length=MAX_BATCH)
    """Ids (or 8+ character prefixes) of the runs to cancel."""
    limit: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)
    dry_run: bool = False
    """Only say which runs would be cancelled."""
    reason: str | None = None


class CancelledMany(BaseModel):
    run_ids: list[str]
    matched: int
    cancelled: int
    already_finished: list[str]
    more: bool
    """More runs matched than ``limit``."""
    dry_run: bool


class DeadLetterItem(BaseModel):
    seq: int
    run_id: str | None
    step_id: str | None
    item: int | None
    task: str | None
    attempts: int | None
    error: Any
    input: Any
    time: str | None
    engine: bool
    """A history event the engine could not apply (not replayable)."""


class DeadLetters(BaseModel):
    dead_letters: list[DeadLetterItem]
    more: bool


class Resolved(BaseModel):
    run_id: str


RETRY = JsonBody(RetryRequest, required=False)
RERUN = JsonBody(RerunRequest, required=False)
BATCH = JsonBody(BatchRequest)
CANCEL_MANY = JsonBody(CancelManyRequest)


def _body(model: BaseModel) -> dict[str, Any]:
    return model.model_dump()


@router.post(
    "/runs/batch",
    status_code=201,
    responses=error_responses(400, 404, 413),
    openapi_extra=BATCH.route_doc(),
)
async def start_many(ctx: Ctx, body: Annotated[BatchRequest, Depends(BATCH)]) -> BatchStarted:
    """Start one run per input (at most 1000); one result per input, in order."""
    return BatchStarted.model_validate(await Bulk(ctx.ops).start_many(_body(body)))


@router.post(
    "/runs/cancel",
    responses=error_responses(400, 404, 409),
    openapi_extra=CANCEL_MANY.route_doc(),
)
async def cancel_many(
    ctx: Ctx, body: Annotated[CancelManyRequest, Depends(CANCEL_MANY)]
) -> CancelledMany:
    """Cancel unfinished runs by workflow / status / ids (a filter is required)."""
    return CancelledMany.model_validate(await Bulk(ctx.ops).cancel_many(_body(body)))


@router.get("/runs/resolve/{prefix}", responses=error_responses(400, 404, 409))
async def resolve(ctx: Ctx, prefix: str) -> Resolved:
    """The whole id of the run an unambiguous prefix (8+ characters) names."""
    return Resolved.model_validate(await Redrive(ctx.ops).resolve({"run_id": prefix}))


@router.post(
    "/runs/{run_id}/retry",
    responses=error_responses(400, 404, 409),
    openapi_extra=RETRY.route_doc(),
)
async def retry_run(
    ctx: Ctx, run_id: str, body: Annotated[RetryRequest, Depends(RETRY)]
) -> RetryDone:
    """Resume a failed or cancelled run in place from its failed steps (409 otherwise)."""
    out = await Redrive(ctx.ops).retry_run({"run_id": run_id, "reason": body.reason})
    return RetryDone.model_validate(out)


@router.post(
    "/runs/{run_id}/rerun",
    status_code=201,
    responses=error_responses(400, 404, 409),
    openapi_extra=RERUN.route_doc(),
)
async def rerun(
    ctx: Ctx, run_id: str, body: Annotated[RerunRequest, Depends(RERUN)]
) -> RerunStarted:
    """A new run of the same workflow revision with the same input."""
    out = await Redrive(ctx.ops).rerun({"run_id": run_id, **_body(body)})
    return RerunStarted.model_validate(out)


@router.get("/dead-letters", responses=error_responses(400, 404, 409))
async def list_dead_letters(
    ctx: Ctx,
    run_id: str | None = None,
    limit: int = Query(100, ge=1, le=MAX_BATCH, description="At most this many, oldest first."),
) -> DeadLetters:
    """Dead letters (of one run), oldest first."""
    out = await Redrive(ctx.ops).list_dead_letters({"run_id": run_id, "limit": limit})
    return DeadLetters.model_validate(out)


@router.post("/dead-letters/{seq}/replay", responses=error_responses(400, 404, 409))
async def replay_dead_letter(ctx: Ctx, seq: int) -> RetryDone:
    """Run a dead-lettered step again: its run resumes, the letter is removed."""
    out = await Redrive(ctx.ops).replay_dead_letter({"seq": seq})
    return RetryDone.model_validate(out)


@router.post("/runs/{run_id}/dead-letters/replay", responses=error_responses(400, 404, 409))
async def replay_run_letters(ctx: Ctx, run_id: str) -> RetryDone:
    """Replay every dead letter of a run (one retry of the run)."""
    out = await Redrive(ctx.ops).replay_dead_letter({"run_id": run_id})
    return RetryDone.model_validate(out)


ROUTES = Routes(router)
"""What ``serve`` hands :func:`~dagnats.server.http.app.create_app`."""
