"""stop_task stops a task and lets a cancellation of the caller through.

The pattern it replaced (``with suppress(BaseException): await task``) ate the caller's
own cancellation: an engine's lease loop, cancelled while a partition's teardown waited
for the intake task that way, kept renewing and its engine's stop waited forever.
"""

from __future__ import annotations

import asyncio

import pytest

from dagnats._nats.tasks import stop_task

WAIT_S = 5.0


async def _slow_to_stop(release: asyncio.Event) -> None:
    """A task that takes a while to wind down once cancelled (as a feed drain can)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await release.wait()
        raise


async def test_the_task_is_cancelled_and_awaited() -> None:
    release = asyncio.Event()
    release.set()
    task = asyncio.create_task(_slow_to_stop(release))
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task), WAIT_S)
    assert task.cancelled()


async def test_a_cancelled_caller_stops_instead_of_going_on() -> None:
    release = asyncio.Event()
    inner = asyncio.create_task(_slow_to_stop(release))
    went_on = asyncio.Event()

    async def loop() -> None:  # a background loop that stops a helper task, then goes on
        await asyncio.sleep(0)
        await stop_task(inner)
        went_on.set()

    outer = asyncio.create_task(loop())
    await asyncio.sleep(0.01)  # outer is now waiting for inner to wind down
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(outer, WAIT_S)
    assert not went_on.is_set()
    release.set()
    await asyncio.wait_for(asyncio.wait([inner]), WAIT_S)


async def test_a_task_that_failed_is_not_raised_into_the_caller() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task), WAIT_S)
    assert isinstance(task.exception(), RuntimeError)


async def test_the_wait_is_bounded() -> None:
    release = asyncio.Event()
    task = asyncio.create_task(_slow_to_stop(release))
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task, timeout_s=0.05), WAIT_S)
    assert not task.done()
    release.set()
    await asyncio.wait_for(asyncio.wait([task]), WAIT_S)
