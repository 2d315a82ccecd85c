"""Bringing a run's cached or stored state up to date from its history.

The engine applies an event to its cached state directly only while it has seen the run's
events in order (ADR 0017); otherwise, or when it gave some of the run's events back
unapplied (``gaps``), it first applies the history events the state has not seen, with
their effects.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from dagnats._nats.history import read_history
from dagnats._nats.types import NatsClient
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.machine.state import RunState
from dagnats.protocol import events as ev
from dagnats.protocol.events import Event

log = logging.getLogger(__name__)

Step = Callable[..., Awaitable[tuple[RunState, Callable[[], Awaitable[None]] | None]]]
Definition = Callable[[RunState | None, Event], Awaitable[WorkflowDef | None]]


class CatchUp:
    """Replays a run's history into its state (the engine's ``_step`` applies each event)."""

    def __init__(self, nc: NatsClient, step: Step, definition: Definition) -> None:
        self.nc = nc
        self._step = step
        self._definition = definition
        self.partitions: int | None = None
        """The history's partition count (set once the engine knows it): each read then
        asks for the run's literal subject, far cheaper for nats-server than a wildcard."""
        self.gaps: dict[str, int] = {}
        """Per run, the newest seq given back unapplied: until the run's state has caught
        up past it, each event of the run is applied after the history up to it."""

    def mark_gap(self, run_id: str, seq: int) -> None:
        self.gaps[run_id] = max(self.gaps.get(run_id, 0), seq)

    async def catch_up(self, run: RunState | None, event: Event) -> RunState | None:
        """Apply the history events before ``event`` that the snapshot has not seen, and
        through the newest event of the run given back unapplied (``gaps``), which may be
        ``event`` itself or a later one: in order, whatever order they come again in.

        Their actions are executed again: an event given back after a failure, or applied
        just before a crash, may not have had them done. Dedup ids make repeats invisible
        within the streams' window; a later repeat is a stale task or timer that the run
        ignores (at-least-once actions, exactly-once state).
        """
        gap = self.gaps.get(event.run_id)
        before = event.seq if gap is None else max(event.seq, gap + 1)
        run = await self._replay(run, event, before)
        if gap is not None and self.gaps.get(event.run_id, 0) <= gap:
            # Applied through it (a newer give-back meanwhile stays for the next event).
            self.gaps.pop(event.run_id, None)
        return run

    async def _replay(self, run: RunState | None, event: Event, before: int) -> RunState | None:
        """Apply the run's input events with ``run.last_seq < seq < before``, with effects."""
        after = run.last_seq if run is not None else 0
        history = await read_history(
            self.nc, event.run_id, after_seq=after, before_seq=before, partitions=self.partitions
        )
        inputs = [e for e in history if e.is_input]
        if not inputs:
            return run
        defn = await self._definition(run, inputs[0])
        if defn is None:
            return run
        applied = 0
        for past in inputs:
            reopens = past.type == ev.WORKFLOW_RETRY_REQUESTED
            if run is not None and (past.seq <= run.last_seq or (run.terminal and not reopens)):
                continue
            if run is None and past.type != ev.WORKFLOW_STARTED:
                continue
            run, _ = await self._step(defn, run, past, records_later=False)
            applied += 1
        log.info("run %s: caught up %d history events", event.run_id, applied)
        return run
