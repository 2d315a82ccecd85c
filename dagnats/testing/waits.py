"""``wait_event`` and ``wait_state``: wait in a test for what a run does, with a deadline.

Both read what is really stored (the run's history, its snapshot) and wake on the change
itself (an ordered consumer on the history, a KV watch on the snapshot): no polling, and a
clear ``TimeoutError`` naming what was awaited when it does not come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dagnats import protocol
from dagnats._nats.stores import watch_snapshot
from dagnats.client.handle import RunHandle
from dagnats.dag.machine.state import RunState
from dagnats.protocol.events import Event


async def wait_event(
    run: RunHandle,
    type: str,
    *,
    step_id: str | None = None,
    where: Callable[[Event], bool] | None = None,
    timeout: float = 10.0,
) -> Event:
    """The first event of ``run`` of this ``type`` (e.g. ``"step.approval.requested"``), for
    ``step_id`` when given and satisfying ``where`` when given; earlier events count.

    Raises ``TimeoutError`` after ``timeout`` seconds, and ``LookupError`` when the run
    ends without such an event.
    """
    what = f"event {type!r}" + (f" of step {step_id!r}" if step_id else "")
    try:
        async with asyncio.timeout(timeout):
            async for event in run.events(follow=True):
                if event.type != type or (step_id is not None and event.step_id != step_id):
                    continue
                if where is None or where(event):
                    return event
    except TimeoutError:
        raise TimeoutError(f"run {run.run_id}: no {what} within {timeout}s") from None
    raise LookupError(f"run {run.run_id} ended without {what}")


async def wait_state(
    run: RunHandle,
    status: str | None = None,
    *,
    step_id: str | None = None,
    where: Callable[[RunState], bool] | None = None,
    timeout: float = 10.0,
) -> RunState:
    """The run's stored state once it has ``status`` (the step's status with ``step_id``)
    and satisfies ``where``; e.g. ``await wait_state(run, "running", step_id="nap")``.

    The snapshot is written a moment after the events (write-behind), so this waits for the
    snapshot itself. Raises ``TimeoutError`` after ``timeout`` seconds.
    """
    if status is None and where is None:
        raise ValueError("wait_state needs a status, a where= predicate, or both")
    what = (f"step {step_id!r} " if step_id else "") + (f"status {status!r}" if status else "")

    def matches(state: RunState) -> bool:
        if status is not None:
            if step_id is not None:
                step = state.steps.get(step_id)
                if step is None or step.status != status:
                    return False
            elif state.status != status:
                return False
        return where is None or where(state)

    client = run.client
    kv = await client.kv(protocol.KV_RUNS)
    last: RunState | None = None
    try:
        async with asyncio.timeout(timeout):
            async for state in watch_snapshot(kv, client.payloads, run.run_id, timeout_s=timeout):
                last = state
                if matches(state):
                    return state
    except TimeoutError:
        seen = f" (last seen: {last.status})" if last is not None else " (no snapshot yet)"
        raise TimeoutError(
            f"run {run.run_id}: no {what or 'matching state'} within {timeout}s{seen}"
        ) from None
    raise AssertionError("unreachable: the watch ends only by a timeout")
