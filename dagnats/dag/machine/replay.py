"""Fold history events into a run state (pure): how a snapshot catches up with its log."""

from __future__ import annotations

from collections.abc import Iterable

from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.machine.advance import advance
from dagnats.dag.machine.state import RunState
from dagnats.protocol import events as ev
from dagnats.protocol.events import Event


def fold(defn: WorkflowDef, run: RunState | None, history: Iterable[Event]) -> RunState | None:
    """Apply the input events of ``history`` newer than ``run.last_seq``, ignoring actions.

    Records and events the state has already seen are skipped; without a state, events
    before the run's ``workflow.started`` are skipped too.
    """
    for event in history:
        if not event.is_input or (run is not None and event.seq <= run.last_seq):
            continue
        if run is None and event.type != ev.WORKFLOW_STARTED:
            continue
        run, _ = advance(defn, run, event)
    return run
