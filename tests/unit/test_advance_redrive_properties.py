"""Methodology: hypothesis DAGs run to their end by the seeded random world of
``test_advance_properties``, then retried up to three times while the world keeps
delivering what the ended incarnations left behind (late results, stale timers, old
approvals); every event is checked against the invariants there and the ones below."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.machine.actions import (
    Action,
    DispatchTask,
    RegisterWaiter,
    RequestApproval,
    StartChildRun,
)
from dagnats.dag.machine.advance import retry_refusal
from dagnats.dag.machine.state import RunState
from dagnats.protocol import events as ev
from tests.unit.test_advance_properties import (
    _SETTINGS,
    MAX_DELIVERIES,
    Trace,
    World,
    _input,
    workflows,
)

MAX_RETRIES = 3


class RetryWorld(World):
    """The world, plus: work that was complete when the run was retried never runs again."""

    def __init__(self, defn: WorkflowDef, seed: int) -> None:
        super().__init__(defn, seed, None)
        self.frozen: dict[str, Any] = {}  # completed step -> its output at the retry
        self.frozen_items: dict[tuple[str, int], Any] = {}

    def check(self, trace: Trace, old: RunState, new: RunState, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, DispatchTask):
                assert a.step_id not in self.frozen, f"completed {a.step_id} dispatched again"
                assert (a.step_id, a.item) not in self.frozen_items, "completed item again"
                assert a.run_retry == new.retries
            elif isinstance(a, StartChildRun | RequestApproval | RegisterWaiter):
                assert a.step_id not in self.frozen, f"completed {a.step_id} began again"
        for sid, output in self.frozen.items():
            s = new.steps[sid]
            assert s.status == "completed" and s.output == output, f"{sid} lost its output"
        if new.status == "pending":  # only a retried limited run waits for a slot
            assert new.retries > 0
            return
        super().check(trace, old, new, actions)

    def freeze(self, state: RunState) -> None:
        for sid, s in state.steps.items():
            if sid in self.handlers:
                continue
            if s.status == "completed":
                self.frozen[sid] = s.output
            for i, it in enumerate(s.items or []):
                if it.status == "completed":
                    self.frozen_items[(sid, i)] = it.output

    def drive(self, trace: Trace) -> None:
        while not trace.state.terminal:
            assert trace.deliveries < MAX_DELIVERIES, "run did not end within the bound"
            assert self.outstanding, f"run stuck with nothing outstanding: {trace.state}"
            action = self.outstanding.pop(self.pick())
            for event in self.events_for(action):
                self.clock = max(event.ts, self.clock)
                event.ts = self.clock
                self.apply(trace, event)


@_SETTINGS
@given(workflows(), st.integers(0, 2**32))
def test_retried_runs_never_rerun_completed_steps(defn: WorkflowDef, seed: int) -> None:
    world = RetryWorld(defn, seed)
    trace = world.run(_input(defn, seed))
    for n in range(1, MAX_RETRIES + 1):
        if retry_refusal(trace.state) is not None:
            assert trace.state.status in ("completed", "compensated") or (
                trace.state.compensating is not None
            )
            break
        world.freeze(trace.state)
        finishes = trace.finishes
        world.apply(trace, world.event(ev.WORKFLOW_RETRY_REQUESTED, data={"retry": n}))
        assert trace.state.retries == n
        world.drive(trace)
        assert trace.state.terminal and trace.finishes == finishes + 1
    if trace.state.status == "completed":
        for sid, s in trace.state.steps.items():
            assert s.status in ("completed", "skipped", "recovered"), (sid, s.status)
