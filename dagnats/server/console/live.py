"""The console's live updates: Server-Sent Events, behind the same token as REST.

- ``/console/api/live/runs``: ``run`` events, one per run snapshot written (every run), so
  the run list shows a new run without a reload; coalesced per run to one message every
  ``COALESCE_S``.
- ``/console/api/live/runs/{id}``: the run's history (``event``, from its first event on),
  the chunks its steps stream (``chunk``) and ``state`` when its snapshot changes.

Connections are bounded (``MAX_STREAMS`` per process; more get 503), every stream sends a
keep-alive comment when quiet, and each is closed with its subscriptions when the browser
goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from dagnats import protocol
from dagnats._nats.history import history_feed
from dagnats.errors import ApiError
from dagnats.protocol.keys import kv_subject
from dagnats.server.http.context import Ctx
from dagnats.server.http.errors import error_responses

log = logging.getLogger(__name__)

MAX_STREAMS = 64
COALESCE_S = 0.25
QUEUE_SIZE = 1000  # messages waiting for a slow browser; past it, chunks are dropped
MAX_PENDING_RUNS = 10_000  # run summaries waiting for the next coalesced send
KEEPALIVE_S = 15.0
router = APIRouter(prefix="/console/api/live", tags=["console"], responses=error_responses(503))


class Streams:
    """Counts open streams (one per browser tab and page) against ``MAX_STREAMS``."""

    def __init__(self) -> None:
        self.open = 0

    def check(self) -> None:
        """Refuse a new stream (503) before its response starts."""
        if self.open >= MAX_STREAMS:
            raise ApiError(f"too many live streams ({MAX_STREAMS}); close a console tab", code=503)

    @contextlib.contextmanager
    def slot(self) -> Any:
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1


STREAMS = Streams()


def sse(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


KEEPALIVE = b": keep-alive\n\n"


def _summary(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "run_id" not in doc:
        return None
    keys = ("run_id", "workflow", "status", "created_at", "finished_at")
    return {k: doc.get(k) for k in keys}


async def _runs_stream(ctx: Ctx) -> AsyncIterator[bytes]:
    with STREAMS.slot():
        yield b"retry: 1000\n\n"
        pending: dict[str, dict[str, Any]] = {}  # run id -> its latest summary
        wake = asyncio.Event()

        async def on_write(msg: Any) -> None:
            row = _summary(msg.data)
            if row is None:
                return  # a delete marker or an oversized snapshot's reference
            if len(pending) < MAX_PENDING_RUNS or row["run_id"] in pending:
                pending[row["run_id"]] = row
                wake.set()

        sub = await ctx.nc.subscribe(kv_subject(protocol.KV_RUNS, ">"), cb=on_write)
        try:
            while True:
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield KEEPALIVE
                    continue
                await asyncio.sleep(COALESCE_S)  # let a burst of writes collapse per run
                wake.clear()
                rows = list(pending.values())
                pending.clear()
                for r in rows:
                    yield sse("run", r)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


@router.get("/runs")
async def live_runs(ctx: Ctx) -> StreamingResponse:
    """Every run snapshot written from now on, as ``event: run`` (text/event-stream)."""
    STREAMS.check()
    return StreamingResponse(_runs_stream(ctx), media_type="text/event-stream")


async def _pump(queue: asyncio.Queue[bytes], feed: AsyncIterator[bytes]) -> None:
    async for item in feed:
        await queue.put(item)


async def _history(ctx: Ctx, run_id: str) -> AsyncIterator[bytes]:
    async for e in history_feed(ctx.nc.jetstream(), run_id):
        if e is not None:
            yield sse("event", e.model_dump(mode="json", exclude_none=True) | {"seq": e.seq})


async def _run_stream(ctx: Ctx, run_id: str) -> AsyncIterator[bytes]:
    with STREAMS.slot():
        yield b"retry: 1000\n\n"
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_SIZE)
        prefix = protocol.stream_subject(run_id, "")

        async def on_chunk(msg: Any) -> None:
            step_id = protocol.stream_step_of(msg.subject, run_id)
            body = {"step_id": step_id, "chunk": _json(msg.data)}
            with contextlib.suppress(asyncio.QueueFull):  # ephemeral output: a slow tab drops
                queue.put_nowait(sse("chunk", body))

        async def on_state(msg: Any) -> None:
            with contextlib.suppress(asyncio.QueueFull):  # the page re-reads the run anyway
                queue.put_nowait(sse("state", {"run_id": run_id}))

        subs = [
            await ctx.nc.subscribe(prefix + ">", cb=on_chunk),
            await ctx.nc.subscribe(kv_subject(protocol.KV_RUNS, run_id), cb=on_state),
        ]
        pump = asyncio.create_task(_pump(queue, _history(ctx, run_id)))
        try:
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield KEEPALIVE
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


@router.get("/runs/{run_id}")
async def live_run(ctx: Ctx, run_id: str) -> StreamingResponse:
    """A run's events, streamed chunks and snapshot changes (text/event-stream)."""
    STREAMS.check()
    state = await ctx.ops.get_run({"run_id": run_id})  # 404 for an unknown run, up front
    return StreamingResponse(_run_stream(ctx, state["run_id"]), media_type="text/event-stream")
