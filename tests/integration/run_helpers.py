"""Helpers for the end-to-end run tests: bounded waits on a run's history and snapshot.

Every helper waits on a subscription or a KV watch (never a sleep loop) and gives up with
``TimeoutError`` after its bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from dagnats import RunHandle, protocol
from dagnats.dag.machine.state import RunState
from dagnats.protocol.events import Event
from dagnats.testing import DagnatsEnv

WAIT_S = 15.0


async def wait_event(
    run: RunHandle,
    type_: str,
    *,
    step_id: str | None = None,
    timeout: float = WAIT_S,
    where: Callable[[Event], bool] | None = None,
) -> Event:
    """The first event of ``type_`` (and step) in the run's history, waiting for it."""
    async for e in run.events(follow=True, timeout=timeout):
        if e.type == type_ and (step_id is None or e.step_id == step_id):
            if where is None or where(e):
                return e
    raise AssertionError(f"run {run.run_id} ended without a {type_} event for {step_id}")


async def wait_state(
    env: DagnatsEnv,
    run_id: str,
    pred: Callable[[RunState], bool],
    *,
    timeout: float = WAIT_S,
) -> RunState:
    """The first snapshot of ``run_id`` for which ``pred`` holds (KV watch, no polling)."""
    kv = await env.nc.jetstream().key_value(protocol.KV_RUNS)
    watcher = await kv.watch(run_id)
    # nats-py leaves KeyWatcher's methods unannotated: the two calls below are untyped.
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"run {run_id}: no matching snapshot within {timeout}s")
            try:
                entry = await watcher.updates(timeout=left)  # type: ignore[no-untyped-call]
            except TimeoutError:
                continue
            if entry is None or not entry.value:
                continue
            state = RunState.model_validate_json(entry.value)
            if pred(state):
                return state
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]


async def event_types(run: RunHandle) -> list[str]:
    return [e.type async for e in run.events()]


def reference(name: str) -> str:
    here = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / name
    return here.read_text()
