"""``run start --watch``: print a run's events and streamed chunks as they arrive."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from typing import Any

import typer

from dagnats import protocol
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import Msg, NatsClient, Subscription
from dagnats.cli.output import compact, emit_json, error_text, outcome_text, watch_line
from dagnats.client import Client, RunHandle
from dagnats.client.diagnosis import Unserved, diagnose_run, may_be_stuck
from dagnats.dag.machine.state import RunState
from dagnats.errors import DagnatsError, RunCancelledError, RunFailedError
from dagnats.protocol import events as ev
from dagnats.protocol.events import Event

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 2000
CHUNK_LIMIT = 1000
RESULT_WAIT_S = 10.0  # the snapshot is written right after the terminal event
# The worker directory has no "a task is waiting for nobody" event to watch, so a watch
# looks every STUCK_CHECK_S while the run is quiet and says each reason once.
STUCK_CHECK_S = 2.0

_TERMINAL_STATUS = {
    ev.WORKFLOW_COMPLETED: "completed",
    ev.WORKFLOW_FAILED: "failed",
    ev.WORKFLOW_CANCELLED: "cancelled",
    ev.WORKFLOW_COMPENSATED: "compensated",
}


async def subscribe_chunks(nc: NatsClient, run_id: str, started: asyncio.Event) -> Subscription:
    """Print ``[step] chunk`` for what steps send with ``ctx.put_stream`` (core pub/sub),
    once ``started`` is set (a fast step can stream before the start request returns)."""
    prefix = f"{protocol.stream_subject(run_id, '')}"

    async def on_chunk(msg: Msg) -> None:
        await started.wait()  # callbacks of one subscription run in order: none is lost
        step = protocol.stream_step_of(msg.subject, run_id) or "?"
        try:
            body: Any = json.loads(msg.data)
        except ValueError:
            body = msg.data.decode(errors="replace")
        data = body.get("data") if isinstance(body, dict) else body
        text = data if isinstance(data, str) else compact(data, CHUNK_LIMIT)
        typer.echo(f"[{step}] {text}")

    return await nc.subscribe(prefix + ">", cb=on_chunk)


async def start_and_watch(
    client: Client,
    workflow: str,
    run_input: Any,
    *,
    idempotency_key: str | None,
    run_id: str | None,
    json_out: bool,
) -> int:
    """Start a run, follow it to its end; exit status 0 if it completed, else 1."""
    rid = run_id or protocol.new_run_id()  # known up front, so no chunk can be missed
    started = asyncio.Event()
    chunks = None if json_out else await subscribe_chunks(client.nc, rid, started)
    try:
        handle = await client.start(
            workflow, run_input, idempotency_key=idempotency_key, run_id=rid
        )
        if handle.run_id != rid and chunks is not None:  # an earlier run with this key
            await chunks.unsubscribe()
            chunks = await subscribe_chunks(client.nc, handle.run_id, started)
        if not json_out:
            again = " (an earlier start with this idempotency key)" if handle.duplicate else ""
            typer.echo(f"Run {handle.run_id} started{again}")
        started.set()
        return await follow(handle, json_out=json_out, chunks=chunks)
    finally:
        if chunks is not None:
            with suppress(Exception):
                await chunks.unsubscribe()


async def stuck_steps(client: Client, state: RunState) -> list[Unserved]:
    """The run's queued steps that no live worker serves (``[]`` for most runs, cheaply)."""
    if not may_be_stuck(state):
        return []
    found = await client.get_workflow(state.workflow, state.revision)
    return await diagnose_run(client.js, found["definition"], state)


async def _say_when_stuck(handle: RunHandle) -> None:
    said: set[str] = set()
    while True:
        await asyncio.sleep(STUCK_CHECK_S)
        try:
            stuck = await stuck_steps(handle.client, await handle.status())
        except DagnatsError as exc:  # a hint only: the watch goes on without it
            log.debug("stuck check of run %s failed: %s", handle.run_id, exc)
            continue
        for u in stuck:
            if u.message not in said:
                said.add(u.message)
                typer.echo(f"Waiting: {u.message}")


async def follow(handle: RunHandle, *, json_out: bool, chunks: Subscription | None = None) -> int:
    seen: list[dict[str, Any]] = []
    last: Event | None = None
    hints = None if json_out else asyncio.create_task(_say_when_stuck(handle))
    try:
        async for e in handle.events(follow=True):
            last = e
            if json_out:
                seen.append(e.model_dump(mode="json", exclude_none=True) | {"seq": e.seq})
                continue
            line = watch_line(e)
            if line is not None:
                typer.echo(line)
    finally:
        if hints is not None:
            await stop_task(hints)
    if chunks is not None:
        with suppress(Exception):
            await chunks.drain()  # type: ignore[no-untyped-call]  # print the last chunks
    status, output, error, step = await _outcome(handle, last)
    if json_out:
        emit_json(
            {
                "run_id": handle.run_id,
                "workflow": handle.workflow,
                "status": status,
                "output": output,
                "error": error,
                "failed_step": step,
                "events": seen,
            }
        )
    elif status == "completed":
        typer.echo(f"Run {handle.run_id} completed")
        typer.echo(f"Output: {compact(output, OUTPUT_LIMIT)}")
    else:
        typer.echo(f"Run {handle.run_id} {outcome_text(status, step, error)}")
    return 0 if status == "completed" else 1


async def _outcome(
    handle: RunHandle, last: Event | None
) -> tuple[str, Any, str | None, str | None]:
    """(status, output, error, failed step) from the snapshot, else from the last event."""
    try:
        output = await handle.result(timeout=RESULT_WAIT_S)
    except RunFailedError as exc:
        return exc.status, None, exc.error, exc.step_id
    except RunCancelledError as exc:
        return exc.status, None, None, None
    except TimeoutError:
        data = last.data if last is not None and isinstance(last.data, dict) else {}
        status = _TERMINAL_STATUS.get(last.type if last else "", "unknown")
        return status, data.get("output"), error_text(data.get("error")) or None, None
    return "completed", output, None, None
