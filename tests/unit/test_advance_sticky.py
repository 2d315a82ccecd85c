"""Methodology: drive advance() with the Sim harness through sticky runs: every dispatch
says the run's sticky mode; a soft run arms a fallback timer per attempt that re-sends a
still-queued attempt to every worker and is stale once the attempt started or moved on."""

from __future__ import annotations

from dagnats.dag.machine._steps import STICKY_SOFT_WAIT_NS
from dagnats.dag.machine.actions import DispatchTask, ScheduleTimer
from tests.unit.advance_harness import Sim, of, wf


def sim(mode: str) -> Sim:
    return Sim(wf({"id": "a"}, {"id": "b", "depends_on": ["a"]}, sticky=mode, timeout="1m"))


def test_a_soft_attempt_falls_back_while_it_is_queued() -> None:
    s = sim("soft")
    actions = s.start()
    [task] = of(actions, DispatchTask)
    assert (task.sticky, task.fallback) == ("soft", False)
    timer = s.timer("sticky_fallback", actions)
    assert (timer.fire_at - s.now).total_seconds() * 1e9 == STICKY_SOFT_WAIT_NS
    again = s.fire(timer)
    [copy] = of(again, DispatchTask)
    assert copy.fallback and copy.dedup_id == task.dedup_id and copy.attempt == 1
    assert not [t for t in of(again, ScheduleTimer) if t.kind == "sticky_fallback"]
    assert s.step("a").status == "queued" and s.step("a").attempts == 1
    assert s.fire(timer) == []  # a repeated timer sends no second copy


def test_a_started_attempt_ignores_its_fallback() -> None:
    s = sim("soft")
    actions = s.start()
    timer = s.timer("sticky_fallback", actions)
    s.started("a")
    assert s.fire(timer) == []
    s.complete("a", 1)
    [later] = of(s.last, DispatchTask)
    assert later.step_id == "b" and later.sticky == "soft"


def test_hard_and_plain_runs_arm_no_fallback() -> None:
    for mode in ("hard", ""):
        s = sim(mode)
        actions = s.start()
        assert of(actions, DispatchTask)[0].sticky == mode
        assert not [t for t in of(actions, ScheduleTimer) if t.kind == "sticky_fallback"]
