"""The one table of step types: what the machine does with each kind of step.

Every place in the machine that treats step types differently asks :func:`kind` instead of
comparing ``step.type``; adding a step type means adding its model in
:mod:`dagnats.dag.definition.models` and one :class:`StepKind` here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagnats.dag.machine._context import Ctx

Start = Callable[["Ctx", str], None]
# (ctx, step id, attempt the timer was armed for)
Deadline = Callable[["Ctx", str, "int | None"], None]
# (ctx, step id, reason) -> the child run told to cancel, if any
Cancel = Callable[["Ctx", str, str], "str | None"]


@dataclass(frozen=True)
class StepKind:
    """How the machine treats one step type."""

    start: Start
    """Begin the step once its input is resolved (and it was not skipped)."""
    redispatch: Start
    """Send the attempt a step-level retry was waiting for."""
    worker_task: bool = False
    """A worker handler does its work (it has a task name and attempts on TASK_QUEUES)."""
    holds_slot: bool = False
    """The step as a whole holds one of the run's ``max_steps`` slots while it runs."""
    fans_out: bool = False
    """Its attempts are per item of its input array (map)."""
    iterates: bool = False
    """A handler may return ``Continue`` for another iteration (agent_loop)."""
    sets_timers: bool = False
    """It may schedule timers of its own (sleeps, wait timeouts, loop delays, deadlines)."""
    retries_only_when_asked: bool = False
    """Only the step's own ``retry`` applies, never the workflow's default policy."""
    on_deadline: Deadline | None = None
    """Handles its ``step_timeout`` timer itself (else the running attempt times out)."""
    on_cancel: Cancel | None = None
    """Undoes what the running step holds outside the run when it is cancelled."""


def kind(step_type: str) -> StepKind:
    """The table entry of ``step_type`` (a KeyError names an unknown type)."""
    return kinds()[step_type]


@functools.cache
def kinds() -> Mapping[str, StepKind]:
    """The table, built on first use: its handlers live in the modules that import it."""
    # Imported here, not at the top: _steps, _waits and _failure look step types up in this
    # table, so importing them while it is imported would be a cycle.
    from dagnats.dag.machine import _failure, _steps, _waits

    held = _steps.dispatch_held
    return {
        "normal": StepKind(
            start=_steps.dispatch, redispatch=held, worker_task=True, holds_slot=True
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
