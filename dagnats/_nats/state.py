"""A run's current state, in one place: the stored snapshot plus the events it has not folded.

The engine writes snapshots a little behind the log (write-behind, ADR 0005), so any reader
that must not show a stale state (the API's ``run.get``, ``run.status()``, the engine after a
poison event) folds the newer history events over the snapshot. Everyone who reads a run goes
through :func:`read_snapshot` or :func:`current_state`; nobody decodes KV entries by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dagnats._nats.history import read_history
from dagnats._nats.payloads import Payloads, decode_run
from dagnats._nats.stores import DefinitionStore, read_snapshot
from dagnats._nats.types import KV_DEL, KV_PURGE, KeyValue, NatsClient, NatsTimeoutError
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.machine.replay import fold
from dagnats.dag.machine.state import RunState
from dagnats.errors import RunNotFoundError
from dagnats.protocol import events as ev
from dagnats.protocol.events import Event


async def current_state(
    nc: NatsClient,
    runs: KeyValue,
    defs: DefinitionStore,
    payloads: Payloads,
    run_id: str,
) -> RunState:
    """The run as its log has it: snapshot plus later events. Raises ``RunNotFoundError``."""
    snapshot = (await read_snapshot(runs, payloads, run_id)).state
    history = await read_history(
        nc, run_id, after_seq=snapshot.last_seq if snapshot is not None else 0
    )
    if snapshot is not None and snapshot.terminal:
        # An ended run changes only by a retry (``retry_run``): nothing else to fold.
        if not any(e.type == ev.WORKFLOW_RETRY_REQUESTED for e in history):
            return snapshot
    defn = await definition_of(defs, snapshot, history)
    if defn is None:  # the definition is gone: show what the snapshot knows
        if snapshot is None:
            raise RunNotFoundError(f"run '{run_id}' not found")
        return snapshot
    state = fold(defn, snapshot, history)
    if state is None:
        raise RunNotFoundError(f"run '{run_id}' not found")
    return state


async def definition_of(
    defs: DefinitionStore, snapshot: RunState | None, history: list[Event]
) -> WorkflowDef | None:
    """The definition (name and pinned revision) a run was started with, if still stored."""
    name, revision = pinned_workflow(snapshot, history)
    if not name:
        return None
    found = await defs.get(name, revision)
    return found[0] if found is not None else None


def pinned_workflow(snapshot: RunState | None, history: list[Event]) -> tuple[str, int | None]:
    """The workflow name and revision of a run: from its snapshot, else its
    ``workflow.started`` event (``("", None)`` when neither is there)."""
    if snapshot is not None:
        return snapshot.workflow, snapshot.revision
    started = next((e for e in history if e.type == ev.WORKFLOW_STARTED), None)
    data = started.data if started is not None and isinstance(started.data, dict) else {}
    revision = data.get("revision")
    return str(data.get("workflow", "")), revision if isinstance(revision, int) else None


async def wait_snapshot(
    runs: KeyValue,
    payloads: Payloads,
    run_id: str,
    ready: Callable[[RunState], bool],
    timeout_s: float,
) -> RunState | None:
    """The first stored snapshot of ``run_id`` (current or future) that is ``ready``, or
    ``None`` after ``timeout_s``: a KV watch, which delivers the current value first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    # nats-py's KeyWatcher methods carry no annotations, hence the ignores below.
    watcher = await runs.watch(run_id)
    try:
        while (left := deadline - loop.time()) > 0:
            try:
                entry = await watcher.updates(timeout=left)  # type: ignore[no-untyped-call]
            except (NatsTimeoutError, TimeoutError):
                return None
            if entry is None or entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                continue
            state = await decode_run(payloads, entry.value)
            if ready(state):
                return state
        return None
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
