"""Methodology: hypothesis DAGs run by a seeded random scheduler; invariants checked per event."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine._planner import with_plans
from dagnats.dag.machine.actions import (
    Action,
    DispatchTask,
    FinishRun,
    RecordEvent,
    RegisterWaiter,
    RequestApproval,
    ScheduleTimer,
    StartChildRun,
)
from dagnats.dag.machine.advance import advance
from dagnats.dag.machine.state import RunState, StepState
from dagnats.protocol.events import Event

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MAX_DELIVERIES = 3000
BOOKKEEPING = {"last_seq", "updated_at"}
_DEADLINES = frozenset({"workflow_timeout", "approval_timeout", "wait_timeout", "step_timeout"})

_RETRY = st.one_of(
    st.none(),
    st.builds(
        lambda n, strategy, delay: {
            "max_attempts": n,
            "strategy": strategy,
            "initial_delay": delay,
        },
        st.integers(0, 3),
        st.sampled_from(["fixed", "linear", "exponential"]),
        st.sampled_from([0, "1s", "30s"]),
    ),
)


@st.composite
def workflows(draw: st.DrawFn) -> WorkflowDef:
    n = draw(st.integers(1, 12))
    n_handlers = draw(st.integers(0, 3))
    handlers = [f"h{i}" for i in range(n_handlers)]
    steps: list[dict[str, Any]] = []
    for i in range(n):
        steps.append(_draw_step(draw, i, handlers))
    for h in handlers:
        steps.append({"id": h, "retry": draw(_RETRY)})
    top: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        top["concurrency"] = {"max_steps": draw(st.integers(1, 3))}
    if draw(st.integers(0, 5)) == 0:
        top["timeout"] = "1h"
    if draw(st.integers(0, 4)) == 0:
        top["sticky"] = "soft"  # fallback timers race the attempts they re-send
    if draw(st.booleans()):
        top["default_retry"] = {"max_attempts": draw(st.integers(0, 2)), "initial_delay": "1s"}
    for s in steps:
        if s.get("retry") is None:
            s.pop("retry", None)
    return load_definition({"name": "prop", "steps": steps, **top})


def _draw_step(draw: st.DrawFn, i: int, handlers: list[str]) -> dict[str, Any]:
    deps = sorted(
        {f"s{j}" for j in draw(st.lists(st.integers(0, i - 1), max_size=3))} if i else set()
    )
    kinds = ["normal"] * 6 + ["agent_loop", "sleep", "approval", "wait", "child", "respond"]
    kinds += ["planner", "agent"]
    if len(deps) == 1:
        kinds += ["map", "map"]
    kind = draw(st.sampled_from(kinds))
    step: dict[str, Any] = {"id": f"s{i}", "depends_on": deps}
    if kind in ("normal", "agent_loop", "map", "planner", "agent"):
        step["retry"] = draw(_RETRY)
        if draw(st.booleans()):
            step["timeout"] = "10s"
    _draw_type(draw, step, kind)
    if draw(st.integers(0, 5)) == 0:
        step["skip_if"] = f"run.input.skip_s{i} == true"
    wants_handler: bool = draw(st.booleans())
    if handlers and wants_handler:
        role = draw(st.sampled_from(["on_failure", "compensate"]))
        step[role] = draw(st.sampled_from(handlers))
    return {k: v for k, v in step.items() if v is not None}


def _draw_type(draw: st.DrawFn, step: dict[str, Any], kind: str) -> None:
    """The step's type and config for ``kind`` (a plain "normal" step has neither)."""
    if kind == "agent_loop":
        step["type"] = "agent_loop"
        step["config"] = {"max_iterations": draw(st.integers(1, 4))}
        if draw(st.booleans()):
            step["config"]["loop_delay"] = "1s"
        if draw(st.booleans()):  # a Continue at the force budget fails the step
            step["config"]["budget_force_at"] = draw(
                st.integers(1, step["config"]["max_iterations"])
            )
    elif kind in ("planner", "agent"):
        step["type"] = kind
    elif kind == "map":
        step["type"] = "map"
        step["config"] = {"max_items": 3, "concurrency": draw(st.sampled_from([None, 1, 2]))}
    elif kind == "sleep":
        step["type"] = "sleep"
        step["config"] = {"duration": draw(st.sampled_from(["0s", "1m"]))}
    elif kind == "approval":
        step["type"] = "approval"
    elif kind == "wait":
        step["type"] = "wait_for_event"
        step["config"] = {"event": "evt", "timeout": "1h"}
    elif kind == "child":
        step["type"] = "sub_workflow"
        step["config"] = {"workflow": "child", "detach": draw(st.booleans())}
        step["retry"] = draw(_RETRY)
        if draw(st.booleans()):
            step["timeout"] = "10m"
    elif kind == "respond":
        step["type"] = "respond"


@dataclass
class Trace:
    state: RunState
    dispatch_ids: list[str] = field(default_factory=list)
    completions: dict[str, int] = field(default_factory=dict)
    deliveries: int = 0
    finishes: int = 0


def _satisfied(s: StepState) -> bool:
    return s.status in ("completed", "skipped") or (
        s.status == "recovered" and s.waiting != "handler"
    )


class World:
    """The shell and the workers: turns actions into later events, in a seeded random order."""

    def __init__(self, defn: WorkflowDef, seed: int, dup_seed: int | None) -> None:
        self.defn = defn
        self.rng = random.Random(seed)
        # Some runs mostly succeed, some fail a lot: both ends of the state space get visited.
        self.fail_rate = self.rng.choice([0.02, 0.1, 0.25])
        self.dup_rng = random.Random(dup_seed) if dup_seed is not None else None
        self.clock = T0
        self.seq = 0
        self.outstanding: list[Action] = []
        self.delivered: list[Event] = []
        self.handlers = {s.on_failure for s in defn.steps} | {s.compensate for s in defn.steps}
        self.timer_ids: set[str] = set()
        self.record_ids: set[str] = set()
        self.full = defn  # the definition plus the fragments its planners added so far

    def event(self, type_: str, **kw: Any) -> Event:
        return Event(type=type_, run_id="r", ts=self.clock, **kw)

    def apply(self, trace: Trace, event: Event) -> None:
        self.seq += 1
        event.seq = self.seq
        old = trace.state
        before = old.model_dump()
        new, actions = advance(self.defn, old, event)
        assert old.model_dump() == before, "advance mutated its input"
        self.full = with_plans(self.defn, new)
        self.check(trace, old, new, actions)
        trace.state = new
        trace.deliveries += 1
        self.delivered.append(event)
        self.outstanding.extend(actions)
        if self.dup_rng is not None and self.dup_rng.random() < 0.3:
            self.duplicate(trace)

    def duplicate(self, trace: Trace) -> None:
        assert self.dup_rng is not None
        again = self.dup_rng.choice(self.delivered).model_copy(update={"ts": self.clock})
        self.seq += 1
        again.seq = self.seq
        new, actions = advance(self.defn, trace.state, again)
        assert actions == [], f"duplicate {again.type} produced {actions}"
        assert new.model_dump(exclude=BOOKKEEPING) == trace.state.model_dump(exclude=BOOKKEEPING)
        trace.state = new

    def check(self, trace: Trace, old: RunState, new: RunState, actions: list[Action]) -> None:
        self._check_actions(trace, new, actions)
        self._check_completions(trace, old, new)
        if not new.terminal:
            assert new.status == "running"

    def _check_actions(self, trace: Trace, new: RunState, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, DispatchTask) and a.fallback:
                # A soft-sticky fallback re-sends an attempt already sent, under its id.
                assert a.dedup_id in trace.dispatch_ids, f"fallback of unsent {a.dedup_id}"
            elif isinstance(a, DispatchTask):
                assert a.dedup_id not in trace.dispatch_ids, f"dispatch id reused: {a.dedup_id}"
                trace.dispatch_ids.append(a.dedup_id)
                if a.step_id not in self.handlers:
                    for dep in self.full.step(a.step_id).depends_on:
                        assert _satisfied(new.steps[dep]), f"{a.step_id} before {dep}"
            elif isinstance(a, StartChildRun | RequestApproval | RegisterWaiter):
                for dep in self.defn.step(a.step_id).depends_on:
                    assert _satisfied(new.steps[dep]), f"{a.step_id} before {dep}"
            elif isinstance(a, ScheduleTimer):
                assert a.dedup_id not in self.timer_ids, f"timer id reused: {a.dedup_id}"
                self.timer_ids.add(a.dedup_id)
            elif isinstance(a, RecordEvent):
                assert a.dedup_id not in self.record_ids, f"record id reused: {a.dedup_id}"
                self.record_ids.add(a.dedup_id)
            elif isinstance(a, FinishRun):
                trace.finishes += 1
                assert new.terminal and a.status == new.status

    def _check_completions(self, trace: Trace, old: RunState, new: RunState) -> None:
        for sid, s in new.steps.items():
            was = old.steps.get(sid, StepState())
            if sid not in self.handlers and s.status == "completed" != was.status:
                trace.completions[sid] = trace.completions.get(sid, 0) + 1
                assert trace.completions[sid] == 1, f"{sid} completed twice"
            for i, it in enumerate(s.items or []):
                prev = (was.items or [])[i] if was.items and i < len(was.items) else None
                if it.status == "completed" and (prev is None or prev.status != "completed"):
                    key = f"{sid}[{i}]"
                    trace.completions[key] = trace.completions.get(key, 0) + 1
                    assert trace.completions[key] == 1, f"{key} completed twice"

    def events_for(self, a: Action) -> list[Event]:
        """What the world answers to an action (one random outcome)."""
        rng = self.rng
        if isinstance(a, DispatchTask):
            return self._task_outcome(a)
        if isinstance(a, ScheduleTimer):
            self.clock = max(self.clock, a.fire_at)
            data = {**a.data, "kind": a.kind}
            return [
                self.event(
                    "timer.fired",
                    step_id=a.step_id,
                    attempt=data.get("attempt"),
                    iteration=data.get("iteration"),
                    item=data.get("item"),
                    data=data,
                )
            ]
        if isinstance(a, RequestApproval):
            if rng.random() < 0.7:
                return [self.event("step.approval.approved", step_id=a.step_id, data={"data": 1})]
            return [self.event("step.approval.rejected", step_id=a.step_id, data={"reason": "no"})]
        if isinstance(a, RegisterWaiter):
            return [self.event("step.wait.matched", step_id=a.step_id, data={"event": {"x": 1}})]
        if isinstance(a, StartChildRun) and not a.detach:
            child: dict[str, Any] = {"child_run_id": a.child_run_id}
            if rng.random() < 0.7:
                return [
                    self.event(
                        "step.child.completed", step_id=a.step_id, data={**child, "output": [1]}
                    )
                ]
            return [
                self.event("step.child.failed", step_id=a.step_id, data={**child, "error": "c"})
            ]
        return []  # records, dead letters, finish, waiter removal: nothing comes back

    def _task_outcome(self, a: DispatchTask) -> list[Event]:
        rng = self.rng
        kw = {
            "step_id": a.step_id,
            "attempt": a.attempt,
            "iteration": a.iteration,
            "item": a.item,
        }
        out = [self.event("step.started", data={}, **kw)] if rng.random() < 0.7 else []
        roll = rng.random()
        if roll < self.fail_rate:
            out.append(self.event("step.failed", data={"error": "e", "retryable": True}, **kw))
        elif roll < self.fail_rate * 1.2:
            out.append(self.event("step.failed", data={"error": "x", "retryable": False}, **kw))
        elif roll < self.fail_rate * 1.4:
            out.append(self.event("step.worker_lost", data={"error": "lost"}, **kw))
        elif roll < self.fail_rate * 1.4 + 0.4 and self.full.step(a.step_id).type == "agent_loop":
            out.append(self.event("step.continue", data={"value": rng.randint(0, 9)}, **kw))
        elif self.full.step(a.step_id).type == "planner":
            out.append(self.event("step.completed", data={"output": self.plan()}, **kw))
        else:
            output = [rng.randint(0, 9) for _ in range(rng.randint(0, 3))]
            out.append(self.event("step.completed", data={"output": output}, **kw))
        return out

    def plan(self) -> Any:
        """A planner's output: usually a good fragment, sometimes one that breaks a rule."""
        rng = self.rng
        n = rng.randint(0, 3)
        steps: list[dict[str, Any]] = [
            {"id": f"p{i}", "depends_on": [f"p{j}" for j in range(i) if rng.random() < 0.5]}
            for i in range(n)
        ]
        if rng.random() < 0.2:
            steps.append({"id": "bad", "depends_on": ["nowhere"]})
        return {"steps": steps} if rng.random() < 0.95 else "not a plan"

    def pick(self) -> int:
        """A random outstanding action; deadlines (timeouts) usually lose the race to work."""
        for _ in range(8):
            i = self.rng.randrange(len(self.outstanding))
            a = self.outstanding[i]
            if not (isinstance(a, ScheduleTimer) and a.kind in _DEADLINES):
                return i
            if self.rng.random() < 0.04:
                return i
        return self.rng.randrange(len(self.outstanding))

    def run(self, run_input: dict[str, Any]) -> Trace:
        started = self.event("workflow.started", data={"input": run_input})
        self.seq += 1
        started.seq = self.seq
        state, actions = advance(self.defn, None, started)
        trace = Trace(state=state)
        self.delivered.append(started)
        self.outstanding.extend(actions)
        for a in actions:
            if isinstance(a, DispatchTask):
                trace.dispatch_ids.append(a.dedup_id)
            if isinstance(a, FinishRun):
                trace.finishes += 1
        while not trace.state.terminal:
            assert trace.deliveries < MAX_DELIVERIES, "run did not end within the bound"
            assert self.outstanding, f"run stuck with nothing outstanding: {trace.state}"
            action = self.outstanding.pop(self.pick())
            for event in self.events_for(action):
                self.clock += timedelta(seconds=1)
                event.ts = max(event.ts, self.clock)
                self.clock = event.ts
                self.apply(trace, event)
        return trace


def _input(defn: WorkflowDef, seed: int) -> dict[str, Any]:
    rng = random.Random(seed ^ 0x5EED)
    return {f"skip_{s.id}": rng.random() < 0.3 for s in defn.steps}


_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(workflows(), st.integers(0, 2**32))
def test_runs_end_and_respect_invariants(defn: WorkflowDef, seed: int) -> None:
    world = World(defn, seed, None)
    trace = world.run(_input(defn, seed))
    assert trace.state.terminal
    assert trace.finishes == 1
    if trace.state.status == "completed":
        for sid, s in trace.state.steps.items():
            assert s.status in ("completed", "skipped", "recovered"), (sid, s.status)
    # a terminal run is unchanged by anything that still arrives
    final = trace.state
    leftovers = [e for a in world.outstanding for e in world.events_for(a)]
    for event in leftovers + world.delivered[-3:]:
        new, actions = advance(defn, final, event)
        assert new is final and actions == []


@_SETTINGS
@given(workflows(), st.integers(0, 2**32), st.integers(0, 2**32))
def test_duplicates_never_change_the_outcome(defn: WorkflowDef, seed: int, dup: int) -> None:
    plain = World(defn, seed, None).run(_input(defn, seed))
    noisy = World(defn, seed, dup).run(_input(defn, seed))
    assert noisy.state.model_dump(exclude=BOOKKEEPING) == plain.state.model_dump(
        exclude=BOOKKEEPING
    )
    assert noisy.dispatch_ids == plain.dispatch_ids
