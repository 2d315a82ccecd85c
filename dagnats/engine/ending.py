"""How a run ends, seen from the engine: announce it, free its slots, or give up on it.

Split from engine.py: these run once per run (or per poison event), not per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from dagnats import protocol
from dagnats._nats.history import read_history
from dagnats._nats.publish import msg_id
from dagnats._nats.state import definition_of
from dagnats._nats.stores import RunStore
from dagnats._nats.types import Msg, NatsClient
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.machine.actions import FinishRun, RecordEvent
from dagnats.dag.machine.advance import max_runs
from dagnats.dag.machine.replay import fold
from dagnats.dag.machine.state import RunFailure, RunState
from dagnats.engine.executor import Executor
from dagnats.engine.limits import announced, release_run, release_singleton, release_slots
from dagnats.protocol import clock, dedup
from dagnats.protocol import events as ev
from dagnats.protocol.ended import ended_body, stored_body
from dagnats.protocol.events import Event
from dagnats.protocol.messages import DeadLetterMessage

log = logging.getLogger(__name__)

GIVE_UP_RETRY_S = 60.0  # failing a run after a poison event failed too: try again then

# Events after which an attempt no longer runs (its concurrency slot is free again).
SLOT_ENDING = frozenset(
    {ev.STEP_COMPLETED, ev.STEP_FAILED, ev.STEP_CONTINUE, ev.WORKER_LOST, ev.TIMER_FIRED}
)


class RunEnding:
    def __init__(self, nc: NatsClient, runs: RunStore, executor: Executor) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.runs = runs
        self.executor = executor

    async def give_up(self, msg: Msg, event: Event, error: str, delivered: int) -> None:
        """An event that cannot be applied however often it comes: park it, fail the run.

        The event is terminated only once its run is really failed; if even that fails
        (NATS trouble), it is given back for a later try instead of leaving the run stuck.
        """
        message = (
            f"the engine could not apply event {event.type} (seq {event.seq}) after "
            f"{delivered} deliveries: {error}"
        )
        log.error("run %s: %s", event.run_id, message)
        try:
            body = DeadLetterMessage(
                run_id=event.run_id, event=event.model_dump(mode="json"), error=message
            )
            await self.js.publish(
                protocol.dead_letter_subject(event.run_id, "engine"),
                body.encode(),
                headers=msg_id(dedup.engine_dead_letter_id(event.seq)),
            )
            await self.fail_run(event, message)
        except Exception:
            log.exception("run %s: could not fail the run; trying again later", event.run_id)
            with contextlib.suppress(Exception):
                await msg.nak(delay=GIVE_UP_RETRY_S)
            return
        with contextlib.suppress(Exception):
            await msg.term()

    async def fail_run(self, event: Event, message: str) -> None:
        """End the run as failed: its state is the snapshot plus its history before
        ``event`` (the snapshot may lag: write-behind), with the usual end of a run."""
        run_id = event.run_id
        try:
            run, rev = await self.runs.load(run_id, fresh=True)
        except ValueError:  # the snapshot itself is unreadable: rebuild from the log alone
            entry = await self.runs.kv.get(run_id)
            run, rev = None, entry.revision or 0
        history = await read_history(
            self.nc, run_id, after_seq=run.last_seq if run else 0, before_seq=event.seq
        )
        defn = await definition_of(self.executor.defs, run, history)
        if defn is not None:
            run = fold(defn, run, history)
        if run is None or run.terminal:
            return
        failed = run.model_copy(
            update={
                "status": "failed",
                "error": RunFailure(message=message, type="EngineError"),
                "finished_at": clock.now(),
                "last_seq": max(run.last_seq, event.seq),
            }
        )
        parent = failed.parent
        record, record_id = ev.engine_failed(run_id, message)
        await self.executor.execute(
            [
                RecordEvent(event=record, dedup_id=record_id),
                FinishRun(
                    run_id=run_id,
                    status="failed",
                    output=None,
                    error={"message": message, "type": "EngineError"},
                    parent_run_id=parent.run_id if parent is not None else None,
                    parent_step_id=parent.step_id if parent is not None else None,
                ),
            ]
        )
        await self.ended(defn, failed, rev)  # frees its run and task slots, saves, announces

    def result_body(self, run: RunState) -> bytes | None:
        """The announcement with the run's result (``None``: too large, read the snapshot)."""
        return ended_body(
            run.run_id,
            run.status,
            output=run.output,
            error=run.error.model_dump(exclude_none=True) if run.error is not None else None,
            failed_step=run.failed_step,
        )

    async def announce_early(self, run: RunState) -> None:
        """Tell waiters subscribed before the start the result, in the same flush as the
        final records and the snapshot's write (not awaited: see ``announce_stored``)."""
        body = self.result_body(run)
        if body is not None:
            await self.nc.publish(protocol.done_subject(run.run_id), body)

    async def announce_stored(self, run: RunState) -> None:
        """Tell waiters that the terminal snapshot is stored: one that subscribed too late
        for the early announcement, and read the snapshot before it was, reads it now."""
        await self.nc.publish(
            protocol.done_subject(run.run_id), stored_body(run.run_id, run.status)
        )

    async def store_and_announce(
        self, run: RunState, rev: int, confirm: Callable[[], Awaitable[None]] | None
    ) -> None:
        """Write a terminal state (and ``confirm`` its records) with its announcements.

        Terminal states are what result() waits for: the result is announced in the same
        flush as the final records and the snapshot's write, and the event is acked only
        once both are stored (after this returns). A crash before that leaves the event
        unacked: the next engine applies it again and writes the same end. The write goes
        first in that flush (one turn of the loop puts its publish in the buffer), so the
        server has it before a waiter can ask for the state."""
        saving = asyncio.ensure_future(
            self.runs.save(run, rev)
            if confirm is None
            else asyncio.gather(self.runs.save(run, rev), confirm())
        )
        await asyncio.sleep(0)
        await self.announce_early(run)
        await saving
        await self.announce_stored(run)

    async def announce(self, run: RunState) -> None:
        """Announce a run whose terminal snapshot is already stored (a repair, a failed
        run): the result when it fits one message, else where to read it."""
        body = self.result_body(run)
        if body is None:
            body = stored_body(run.run_id, run.status)
        await self.nc.publish(protocol.done_subject(run.run_id), body)

    async def release_slots(
        self, defn: WorkflowDef, event: Event, run: RunState, ended: bool
    ) -> None:
        """Give back max_task_concurrency slots held by attempts that have ended."""
        kv = self.executor.kv[protocol.KV_CONCURRENCY]
        if ended:
            limit = max_runs(defn)
            if limit is not None:
                promoted = await release_run(kv, defn.name, run.run_id, limit)
                for admitted in promoted:
                    await self.executor.run_actions.admitted(admitted)
                if promoted:
                    await announced(kv, defn.name, promoted)
            for limited in defn.steps:
                if limited.max_task_concurrency:
                    await release_slots(kv, limited.task_name, prefix=f"{run.run_id}.")
            return
        if event.step_id is None or event.type not in SLOT_ENDING:
            return
        if event.type == ev.TIMER_FIRED and (event.data or {}).get("kind") != "step_timeout":
            return
        step = next((s for s in defn.steps if s.id == event.step_id), None)
        if step is None or not step.max_task_concurrency:
            return
        attempt, iteration = event.attempt or 1, event.iteration or 0
        holder = dedup.task_id(run.run_id, step.id, attempt, iteration, event.item)
        await release_slots(kv, step.task_name, holder=holder)

    async def ended(self, defn: WorkflowDef | None, run: RunState, rev: int) -> int:
        """Free the ended run's slots, save it, announce it; returns the new revision."""
        if defn is not None:
            await self.release_slots(
                defn, Event(type=ev.WORKFLOW_COMPLETED, run_id=run.run_id), run, True
            )
            if defn.singleton is not None:
                await release_singleton(self.executor.kv[protocol.KV_CONCURRENCY], defn, run)
        new_rev = await self.runs.save(run, rev)
        await self.announce(run)
        return new_rev
