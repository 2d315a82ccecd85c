"""``/v1``: the HTTP routes of the worker bridge (behind the bearer token when set)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path

from dagnats.protocol import events as ev
from dagnats.protocol.durations import SECOND
from dagnats.server.bridge.models import (
    Checkpoint,
    CompleteRequest,
    Connected,
    ConnectRequest,
    ContinueRequest,
    Disconnected,
    Done,
    FailRequest,
    PollRequest,
    PollResponse,
    Resolved,
    SignalRequest,
    StreamRequest,
    TaskOut,
    ValueRequest,
)
from dagnats.server.bridge.service import Bridge
from dagnats.server.bridge.sessions import HeldTask
from dagnats.server.http.bodies import JsonBody
from dagnats.server.http.context import Ctx, service
from dagnats.server.http.errors import error_responses
from dagnats.worker.outcomes import completed_data, continue_data, failure_data

router = APIRouter(prefix="/v1", tags=["worker bridge"])

SERVICE = "bridge"
CONNECT = JsonBody(ConnectRequest)
POLL = JsonBody(PollRequest, required=False)
COMPLETE = JsonBody(CompleteRequest, required=False)
FAIL = JsonBody(FailRequest)
CONTINUE = JsonBody(ContinueRequest, required=False)
VALUE = JsonBody(ValueRequest, required=False)
STREAM = JsonBody(StreamRequest, required=False)
SIGNAL = JsonBody(SignalRequest)

WorkerId = Annotated[str, Path(pattern=r"^w[0-9a-f]{24}$")]
TaskId = Annotated[str, Path(pattern=r"^w[0-9a-f]{24}-[0-9]{1,19}$")]
ERRORS = error_responses(400, 404)


def _bridge(ctx: Ctx) -> Bridge:
    bridge: Bridge = service(ctx, SERVICE)
    return bridge


B = Annotated[Bridge, Depends(_bridge)]


def _out(held: HeldTask) -> TaskOut:
    tm = held.message
    return TaskOut(
        task_id=held.task_id,
        task=tm.task,
        run_id=tm.run_id,
        workflow=tm.workflow,
        step_id=tm.step_id,
        attempt=tm.attempt,
        iteration=tm.iteration,
        item=tm.item,
        input=tm.input,
        idempotency_key=tm.idempotency_key,
        timeout_s=tm.timeout_ns / SECOND if tm.timeout_ns and tm.timeout_ns > 0 else None,
        delivery=held.delivery,
    )


@router.post("/workers", status_code=201, responses=ERRORS, openapi_extra=CONNECT.route_doc())
async def connect(bridge: B, body: Annotated[ConnectRequest, Depends(CONNECT)]) -> Connected:
    """Connect a worker: bind its tasks to their durable consumers."""
    session = await bridge.connect(body)
    names = [f.name for f in session.feeds]
    return Connected(worker_id=session.worker_id, lease_s=session.lease_s, consumers=names)


@router.delete("/workers/{worker_id}", responses=ERRORS)
async def disconnect(bridge: B, worker_id: WorkerId) -> Disconnected:
    """Disconnect: every task the worker holds or has queued goes back to the queue."""
    return Disconnected(worker_id=worker_id, returned=await bridge.disconnect(worker_id))


@router.post("/workers/{worker_id}/poll", responses=ERRORS, openapi_extra=POLL.route_doc())
async def poll(
    bridge: B, worker_id: WorkerId, body: Annotated[PollRequest, Depends(POLL)]
) -> PollResponse:
    """Long poll for tasks (each call also renews the worker's lease)."""
    session = bridge.session(worker_id)
    held = await bridge.poll(session, body.max_tasks, body.wait_s)
    return PollResponse(tasks=[_out(h) for h in held])


_OUTCOMES: dict[str, Literal["completed", "failed", "continued"]] = {
    ev.STEP_COMPLETED: "completed",
    ev.STEP_FAILED: "failed",
    ev.STEP_CONTINUE: "continued",
}


async def _resolve(bridge: Bridge, task_id: str, event_type: str, data: dict[str, Any]) -> Resolved:
    await bridge.resolve(task_id, event_type, data)
    return Resolved(task_id=task_id, outcome=_OUTCOMES[event_type])


@router.post("/tasks/{task_id}/complete", responses=ERRORS, openapi_extra=COMPLETE.route_doc())
async def complete(
    bridge: B, task_id: TaskId, body: Annotated[CompleteRequest, Depends(COMPLETE)]
) -> Resolved:
    """Complete the step with its output."""
    return await _resolve(bridge, task_id, ev.STEP_COMPLETED, completed_data(body.output))


@router.post("/tasks/{task_id}/fail", responses=ERRORS, openapi_extra=FAIL.route_doc())
async def fail(bridge: B, task_id: TaskId, body: Annotated[FailRequest, Depends(FAIL)]) -> Resolved:
    """Fail this attempt: the engine retries it (by the step's policy) unless not retryable."""
    after_ns = None if body.retry_after_s is None else int(body.retry_after_s * SECOND)
    data = failure_data(
        body.error, body.error_type, retryable=body.retryable, retry_after_ns=after_ns
    )
    return await _resolve(bridge, task_id, ev.STEP_FAILED, data)


@router.post("/tasks/{task_id}/continue", responses=ERRORS, openapi_extra=CONTINUE.route_doc())
async def continue_(
    bridge: B, task_id: TaskId, body: Annotated[ContinueRequest, Depends(CONTINUE)]
) -> Resolved:
    """An agent loop's step: run one more iteration with ``value``."""
    return await _resolve(bridge, task_id, ev.STEP_CONTINUE, continue_data(body.value))


@router.post("/tasks/{task_id}/heartbeat", responses=ERRORS)
async def heartbeat(bridge: B, task_id: TaskId) -> Done:
    """The task is alive (the bridge heartbeats held tasks itself while the lease holds)."""
    await bridge.held(task_id).ctx.heartbeat()
    return Done()


@router.post("/tasks/{task_id}/checkpoint", responses=ERRORS, openapi_extra=VALUE.route_doc())
async def checkpoint(
    bridge: B, task_id: TaskId, body: Annotated[ValueRequest, Depends(VALUE)]
) -> Done:
    """Store a checkpoint; the step's next attempt can load it."""
    await bridge.held(task_id).ctx.checkpoint(body.value)
    return Done()


@router.get("/tasks/{task_id}/checkpoint", responses=ERRORS)
async def load_checkpoint(bridge: B, task_id: TaskId) -> Checkpoint:
    """The step's last checkpoint (null: none)."""
    return Checkpoint(value=await bridge.held(task_id).ctx.load_checkpoint())


@router.post("/tasks/{task_id}/stream", responses=ERRORS, openapi_extra=STREAM.route_doc())
async def stream(
    bridge: B, task_id: TaskId, body: Annotated[StreamRequest, Depends(STREAM)]
) -> Done:
    """Publish a chunk of real-time output (``stream.<run_id>.<step_id>``)."""
    await bridge.held(task_id).ctx.put_stream(body.data)
    return Done()


@router.post("/tasks/{task_id}/signal", responses=ERRORS, openapi_extra=SIGNAL.route_doc())
async def signal(
    bridge: B, task_id: TaskId, body: Annotated[SignalRequest, Depends(SIGNAL)]
) -> Done:
    """Send a signal to a run (any run), as ``ctx.send_signal`` does."""
    await bridge.held(task_id).ctx.send_signal(body.run_id, body.name, body.data)
    return Done()
