"""Helpers for the worker tests: play the engine's part on a real nats-server.

Tests publish ``TaskMessage`` bodies to ``task.<task>`` as the engine would and read what
the worker wrote from ``history.<run_id>`` through an ordered consumer on the stream (so
JetStream dedup applies: what a test sees is what the engine would see).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

from dagnats import protocol
from dagnats._nats.publish import msg_id
from dagnats._nats.types import DeliverPolicy, Msg, NatsClient
from dagnats.protocol import partitions
from dagnats.protocol.events import Event
from dagnats.worker import Worker

WAIT_S = 10.0  # every wait in these tests is bounded by this


def task_message(
    task: str,
    input: Any = None,
    *,
    run_id: str | None = None,
    step_id: str = "s",
    attempt: int = 1,
    iteration: int = 0,
    item: int | None = None,
    timeout_ns: int | None = None,
) -> protocol.TaskMessage:
    run_id = run_id or f"run{secrets.token_hex(6)}"
    suffix = "" if item is None else f".{item}"
    return protocol.TaskMessage(
        run_id=run_id,
        workflow="wf",
        step_id=step_id,
        task=task,
        attempt=attempt,
        iteration=iteration,
        item=item,
        input=input,
        timeout_ns=timeout_ns,
        idempotency_key=f"{run_id}.{step_id}{suffix}",
        dedup_id=f"{run_id}.{step_id}{suffix}.{attempt}.{iteration}",
    )


async def publish_task(nc: NatsClient, tm: protocol.TaskMessage, group: str | None = None) -> None:
    await nc.jetstream().publish(
        protocol.task_subject(tm.task, group),
        tm.model_dump_json().encode(),
        headers=msg_id(tm.dedup_id),
    )


class History:
    """Events of ``history.<subject filter>`` in stream order, with their headers."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Event, dict[str, str]]] = asyncio.Queue()
        self.seen: list[Event] = []

    async def _on(self, msg: Msg) -> None:
        self.queue.put_nowait((Event.from_bytes(msg.data), dict(msg.headers or {})))

    async def next(self, *types: str, timeout: float = WAIT_S) -> Event:
        """The next event (of one of ``types`` if given), skipping others."""
        event, _ = await self.next_with_headers(*types, timeout=timeout)
        return event

    async def next_with_headers(
        self, *types: str, timeout: float = WAIT_S
    ) -> tuple[Event, dict[str, str]]:
        async def pick() -> tuple[Event, dict[str, str]]:
            while True:
                event, headers = await self.queue.get()
                self.seen.append(event)
                if not types or event.type in types:
                    return event, headers

        return await asyncio.wait_for(pick(), timeout)

    async def results(self, n: int, timeout: float = WAIT_S) -> list[Event]:
        """The next ``n`` result events (completed / failed / continue)."""
        return [
            await self.next("step.completed", "step.failed", "step.continue", timeout=timeout)
            for _ in range(n)
        ]


@contextlib.asynccontextmanager
async def history(nc: NatsClient, run_id: str = "*") -> AsyncIterator[History]:
    """One run's events from its start, or (``"*"``) every run's events from now on."""
    h = History()
    sub = await nc.jetstream().subscribe(
        # Stored as history.<partition>.<run_id> (ADR 0013): filter on the stored subject.
        partitions.history_filter(run_id),
        cb=h._on,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW if run_id == "*" else DeliverPolicy.ALL,
    )
    try:
        yield h
    finally:
        await sub.unsubscribe()


@contextlib.asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[None]:
    """Run ``workers`` (``async with``) until the block ends; bounded start and stop."""
    async with contextlib.AsyncExitStack() as stack:
        for w in workers:
            await asyncio.wait_for(w.__aenter__(), WAIT_S)
            stack.push_async_callback(_stop, w)
        yield


async def _stop(worker: Worker) -> None:
    await asyncio.wait_for(worker.__aexit__(None, None, None), WAIT_S * 2)
