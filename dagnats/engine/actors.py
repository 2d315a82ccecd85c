"""Ending the run actors of a partition the engine no longer acts on.

Each run with events in hand has one actor task (named ``run-<run id>``) draining its queue
of deliveries (the engine's ``_actor``). When the partition's lease is handed over or lost,
those actors end and what they still hold is given back at once, rather than left to wait
out the consumer's ack wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

GIVE_UP_S = 2.0  # the longest cancelled actors are waited for


async def end_actors(
    queues: dict[str, deque[T]],
    actors: set[asyncio.Task[None]],
    in_part: Callable[[str], bool],
    give_back: Callable[[deque[T]], Awaitable[None]],
    *,
    grace_s: float,
) -> None:
    """End the actors of the runs ``in_part`` (all but the caller) after ``grace_s``, drop
    their queues from ``queues`` and ``give_back`` what each queue still holds."""
    me = asyncio.current_task()
    mine = [(r, q) for r, q in queues.items() if in_part(r)]
    tasks = [t for t in actors if t is not me and in_part(t.get_name().removeprefix("run-"))]
    if tasks and grace_s > 0:
        await asyncio.wait(tasks, timeout=grace_s)
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=GIVE_UP_S)
    for run_id, q in mine:
        # An actor cancelled before its first step never ran its ``finally``: its queue
        # would stay, and every later event of the run would wait in it for nobody.
        if queues.get(run_id) is q:
            del queues[run_id]
        await give_back(q)


async def wait_actors(actors: set[asyncio.Task[None]], timeout_s: float) -> set[asyncio.Task[None]]:
    """Wait, at most ``timeout_s``, for the actors running now to end; those still running."""
    if not actors:
        return set()
    _done, pending = await asyncio.wait(set(actors), timeout=timeout_s)
    return pending
