"""Redrive: retry a run in place, rerun it anew, and replay its dead letters.

``retry_run`` publishes ``workflow.retry_requested`` (the machine resumes the run from its
failed steps, see :mod:`dagnats.dag.machine._redrive`) and waits until the engine has
applied it, so a ``result()`` right after waits for the new outcome instead of reading the
old one. Replaying a dead letter is a retry of its run that names the letter; the letters
of the steps a retry sends again are deleted from ``DEAD_LETTERS``, so none is replayed
twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dagnats._nats.dead_letters import (
    StoredLetter,
    delete_dead_letter,
    get_dead_letter,
    read_dead_letters,
)
from dagnats._nats.publish import append_event
from dagnats._nats.state import wait_snapshot
from dagnats.dag.machine.advance import retry_refusal
from dagnats.dag.machine.state import RunState
from dagnats.errors import ApiError, NotFoundError
from dagnats.protocol import events as ev
from dagnats.server import singleton
from dagnats.server.run_lookup import MAX_LIST, last_run, resolve_run_id

if TYPE_CHECKING:
    from dagnats.server.operations import Operations

log = logging.getLogger(__name__)

# How long a retry waits for the engine to apply it before it says so (the run resumes
# whenever an engine applies it; the error only says the wait was cut short).
APPLY_WAIT_S = 10.0
# A run's failed steps are few (a failure ends the run); this bounds the letters examined.
MAX_LETTERS_PER_RUN = 1000
_RESET = frozenset({"failed", "cancelled"})


def letter_view(letter: StoredLetter) -> dict[str, Any]:
    b = letter.body
    return {
        "seq": letter.seq,
        "run_id": b.run_id,
        "step_id": b.step_id,
        "item": b.item,
        "task": b.task,
        "attempts": b.attempts,
        "error": b.error,
        "input": b.input,
        "time": b.ts.isoformat() if b.ts is not None else letter.stored_at,
        "engine": b.event is not None,
    }


class Redrive:
    """``run.retry``, ``run.rerun``, ``run.resolve``, ``dlq.list``, ``dlq.replay``."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    async def resolve(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"run_id": prefix}`` or ``{"last": true, "workflow"?}`` -> ``{"run_id"}``."""
        if body.get("last"):
            wf = body.get("workflow")
            return {"run_id": await last_run(self.ops.runs, self.ops.payloads, wf)}
        ref = body.get("run_id")
        if isinstance(ref, str) and ref and await self.ops.schedules.get(ref) is not None:
            return {"run_id": ref}  # a scheduled run: no snapshot or history yet
        return {"run_id": await self.run_id(ref)}

    async def run_id(self, ref: Any) -> str:
        return await resolve_run_id(self.ops.js, self.ops.runs, ref)

    # --- retry ---------------------------------------------------------------------------

    async def retry_run(self, body: dict[str, Any]) -> dict[str, Any]:
        run_id = await self.run_id(body.get("run_id"))
        reason = body.get("reason")
        return await self._retry(await self.ops._state(run_id), reason, replayed=[])

    async def _retry(self, state: RunState, reason: Any, *, replayed: list[int]) -> dict[str, Any]:
        why = retry_refusal(state)
        if why is not None:
            raise ApiError(why, code=409)
        await self._claim_singleton(state)
        number = state.retries + 1
        steps = [sid for sid, st in state.steps.items() if st.status in _RESET]
        text = reason if isinstance(reason, str) and reason else None
        await append_event(self.ops.js, *ev.retry_requested(state.run_id, number, text))
        removed = await self._drop_letters(state.run_id, set(steps))
        applied = await wait_snapshot(
            self.ops.runs,
            self.ops.payloads,
            state.run_id,
            lambda s: s.retries >= number,
            APPLY_WAIT_S,
        )
        if applied is None:
            raise ApiError(
                f"retry {number} of run '{state.run_id}' was requested, but no engine applied "
                f"it within {APPLY_WAIT_S:g}s (is an engine running?); the run resumes when "
                "one does",
                code=504,
            )
        return {
            "run_id": state.run_id,
            "retry": number,
            "status": applied.status,
            "steps": steps,
            "dead_letters_removed": sorted(set(removed) | set(replayed)),
        }

    async def _claim_singleton(self, state: RunState) -> None:
        """A singleton's retried run becomes its active run again, as a start would: with
        ``skip``, refused while another run is active; with ``cancel``, that run is cancelled."""
        defn, _ = await self.ops.workflow_revision(state.workflow, state.revision)
        if defn.singleton is None:
            return
        kv = await self.ops._concurrency()
        active = await singleton.claim(
            self.ops.js, kv, self.ops._state, defn, state.input, state.run_id
        )
        if active is not None:
            raise ApiError(
                f"run '{state.run_id}' of singleton workflow '{state.workflow}' cannot be "
                f"retried while run '{active}' is active (singleton mode 'skip')",
                code=409,
            )

    async def _drop_letters(self, run_id: str, steps: set[str]) -> list[int]:
        """Delete the run's dead letters of ``steps``: their work is being done again."""
        letters, _ = await read_dead_letters(self.ops.nc, run_id=run_id, limit=MAX_LETTERS_PER_RUN)
        removed = []
        for letter in letters:
            if letter.body.step_id in steps and await delete_dead_letter(self.ops.js, letter.seq):
                removed.append(letter.seq)
        return removed

    # --- rerun ---------------------------------------------------------------------------

    async def rerun(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new run of the same workflow revision with the same input, linked by
        ``rerun_of``. The workflow's ``idempotency_key`` expression is not applied (it would
        find the original); an explicit ``idempotency_key`` is."""
        run_id = await self.run_id(body.get("run_id"))
        state = await self.ops._state(run_id)
        start = {
            "workflow": state.workflow,
            "revision": state.revision,
            "input": state.input,
            "idempotency_key": body.get("idempotency_key"),
            "run_id": body.get("new_run_id"),
            "rerun_of": run_id,
        }
        out = await self.ops.start_run(start, trusted_input=True)
        return {**out, "rerun_of": run_id}

    # --- dead letters --------------------------------------------------------------------

    async def list_dead_letters(self, body: dict[str, Any]) -> dict[str, Any]:
        ref = body.get("run_id")
        run_id = await self.run_id(ref) if ref else None
        limit = body.get("limit") or 100
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise ApiError(f"field 'limit' must be an integer from 1 to {MAX_LIST}", code=400)
        letters, more = await read_dead_letters(self.ops.nc, run_id=run_id, limit=limit)
        return {"dead_letters": [letter_view(x) for x in letters], "more": more}

    async def replay_dead_letter(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"seq": n}`` replays one letter, ``{"run_id": id}`` every letter of a run."""
        seq, ref = body.get("seq"), body.get("run_id")
        if (seq is None) == (ref is None):
            raise ApiError("give exactly one of 'seq' (a dead letter) or 'run_id'", code=400)
        if seq is not None:
            if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq < 2**63:
                raise ApiError(f"field 'seq' must be a positive integer, got {seq!r}", code=400)
            letters = [await self._letter(seq)]
            run_id = letters[0].body.run_id or ""
        else:
            run_id = await self.run_id(ref)
            letters, _ = await read_dead_letters(
                self.ops.nc, run_id=run_id, limit=MAX_LETTERS_PER_RUN
            )
            letters = [x for x in letters if x.body.event is None]
            if not letters:
                raise NotFoundError(f"run '{run_id}' has no dead letters to replay")
        state = await self.ops._state(run_id)
        replayable = [x for x in letters if _step_status(state, x) in _RESET]
        if not replayable:
            x = letters[0]
            raise ApiError(
                f"dead letter {x.seq}: step '{x.body.step_id}' of run '{run_id}' is "
                f"{_step_status(state, x)} now, so there is nothing to replay",
                code=409,
            )
        seqs = [x.seq for x in replayable]
        reason = f"replay of dead letter(s) {', '.join(map(str, seqs))}"
        return await self._retry(state, reason, replayed=seqs)

    async def _letter(self, seq: int) -> StoredLetter:
        letter = await get_dead_letter(self.ops.js, seq)
        if letter is None:
            raise NotFoundError(
                f"dead letter {seq} not found (already replayed, expired, or never there)"
            )
        if letter.body.event is not None or not letter.body.run_id:
            raise ApiError(
                f"dead letter {seq} is a history event the engine could not apply, not a "
                "task: it cannot be replayed (retry its run instead)",
                code=409,
            )
        return letter


def _step_status(state: RunState, letter: StoredLetter) -> str:
    st = state.steps.get(letter.body.step_id or "")
    return st.status if st is not None else "unknown"
