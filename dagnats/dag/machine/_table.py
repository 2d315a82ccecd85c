"""The one table of step types: what the machine does with each kind of step.

Every place in the machine that treats step types differently asks the step's
:class:`~dagnats.dag.machine._context.StepKind` (``ctx.kind(sid)``) instead of comparing
``step.type``; adding a step type means adding its model in
:mod:`dagnats.dag.definition.models` and one entry here. ``advance`` hands the table to
:func:`~dagnats.dag.machine._context.graph_of`, so the step modules whose handlers it
names never import it (the machine's import graph stays acyclic).
"""

from __future__ import annotations

from collections.abc import Mapping

from dagnats.dag.machine import _failure, _planner, _steps, _waits
from dagnats.dag.machine._context import StepKind

held = _steps.dispatch_held

STEP_KINDS: Mapping[str, StepKind] = {
    "normal": StepKind(start=_steps.dispatch, redispatch=held, worker_task=True, holds_slot=True),
    # An agent is a normal step whose metadata.role a deployment may route by.
    "agent": StepKind(start=_steps.dispatch, redispatch=held, worker_task=True, holds_slot=True),
    "planner": StepKind(
        start=_steps.dispatch,
        redispatch=held,
        worker_task=True,
        holds_slot=True,
        on_complete=_planner.complete,
    ),
    "agent_loop": StepKind(
        start=_steps.dispatch,
        redispatch=held,
        worker_task=True,
        holds_slot=True,
        iterates=True,
        sets_timers=True,
    ),
    "map": StepKind(start=_steps.start_map, redispatch=held, worker_task=True, fans_out=True),
    "sub_workflow": StepKind(
        start=_waits.start_child,
        redispatch=_waits.start_child,
        sets_timers=True,
        retries_only_when_asked=True,
        on_deadline=_waits.child_deadline,
        on_cancel=_failure.cancel_child,
    ),
    "sleep": StepKind(start=_waits.start_sleep, redispatch=held, sets_timers=True),
    "wait_for_event": StepKind(
        start=_waits.start_wait,
        redispatch=held,
        sets_timers=True,
        on_cancel=_failure.drop_waiter,
    ),
    "approval": StepKind(start=_waits.start_approval, redispatch=held, sets_timers=True),
    "respond": StepKind(start=_steps.start_respond, redispatch=held),
}
