"""A singleton workflow's one active run, per workflow or per value of its ``key``.

At start the API claims ``singleton.<workflow>.<scope>`` in the ``concurrency`` bucket with
a compare-and-swap (``protocol.keys.singleton_key``). When another run holds it and is still
active, ``skip`` answers the start with that run (nothing new starts) and ``cancel`` asks it
to cancel and hands the claim to the new run. A holder whose run has ended, or never
started, is replaced. The engine drops the claim when the holder ends
(:func:`dagnats.engine.limits.release_singleton`), so the bucket keeps one record per scope
that is in use.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from dagnats._nats import cas
from dagnats._nats.publish import append_event
from dagnats._nats.types import JetStreamContext, KeyValue
from dagnats.dag.definition.flow import singleton_scope
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.machine.state import RunState
from dagnats.errors import ApiError, RunNotFoundError
from dagnats.protocol import events as ev
from dagnats.protocol import keys

CLAIM_TRIES = 5
# A claim whose run has no history yet may be a start still publishing (up to the JetStream
# publish timeout, 5 s): it counts as active this long.
CLAIM_GRACE_S = 6.0

StateOf = Callable[[str], Awaitable[RunState]]


async def claim(
    js: JetStreamContext,
    kv: KeyValue,
    state_of: StateOf,
    defn: WorkflowDef,
    run_input: object,
    run_id: str,
) -> str | None:
    """Claim the singleton for ``run_id``: ``None`` when it may start, else the active run
    a ``skip`` start is answered with. Not a singleton: ``None`` at once."""
    scope = singleton_scope(defn, run_input)
    if scope is None or defn.singleton is None:
        return None
    key = keys.singleton_key(defn.name, scope)
    mine = {"run_id": run_id, "ts": time.time()}
    for _ in range(CLAIM_TRIES):
        held, rev = await cas.read_json(kv, key)
        if held is None:
            if await cas.write_json(kv, key, mine, 0):
                return None
            continue  # another start created it first: look at its holder
        holder = str(held.get("run_id"))
        if holder == run_id:
            return None
        if await _active(state_of, holder, float(held.get("ts", 0.0))):
            if defn.singleton.mode == "skip":
                return holder
            reason = f"singleton workflow '{defn.name}': replaced by run {run_id}"
            await append_event(js, *ev.cancel_requested(holder, reason, by="singleton"))
        if await cas.write_json(kv, key, mine, rev):
            return None
    raise ApiError(f"the singleton of workflow '{defn.name}' is contended; retry", code=409)


async def _active(state_of: StateOf, run_id: str, claimed_at: float) -> bool:
    try:
        state = await state_of(run_id)
    except RunNotFoundError:
        return time.time() - claimed_at < CLAIM_GRACE_S
    return not state.terminal
