"""Methodology: drive advance() with the Sim harness through run admission (max_runs,
singleton) and cancel_on, asserting on the run status, the actions emitted and their order."""

from __future__ import annotations

from datetime import timedelta

from dagnats.dag.machine.actions import AdmitRun, RegisterWaiter, RemoveWaiter
from dagnats.protocol.events import (
    CANCEL_WAITER_PREFIX,
    STEP_WAIT_MATCHED,
    WORKFLOW_ADMITTED,
    WORKFLOW_CANCEL_REQUESTED,
    WORKFLOW_PENDING,
)
from tests.unit.advance_harness import Sim, dispatched, of, records, wf


def test_max_runs_holds_the_run_pending_until_admitted() -> None:
    sim = Sim(wf({"id": "a"}, concurrency={"max_runs": 2}, timeout="1m"))
    actions = sim.start("x")
    assert sim.state.status == "pending"
    assert dispatched(actions) == []
    [admit] = of(actions, AdmitRun)
    assert (admit.run_id, admit.workflow, admit.max_runs) == ("r1", "w", 2)
    assert admit.priority_offset_s == 0 and admit.arrived_at == sim.state.created_at
    assert records(actions, WORKFLOW_PENDING)
    actions = sim.send(WORKFLOW_ADMITTED)
    admitted = sim.state  # a new name: mypy keeps the narrowing of sim.state.status above
    assert admitted.status == "running"
    assert dispatched(actions) == ["a"]
    assert not of(actions, AdmitRun)
    # A second admission is a no-op.
    assert sim.send(WORKFLOW_ADMITTED) == []


def test_singleton_is_not_a_run_limit() -> None:
    # A singleton's one active run is kept by the API at start (skip or cancel), not queued.
    sim = Sim(wf({"id": "a"}, singleton={"mode": "skip"}))
    actions = sim.start()
    assert not of(actions, AdmitRun)
    assert dispatched(actions) == ["a"]


def test_cancel_while_pending_finishes_without_dispatch() -> None:
    sim = Sim(wf({"id": "a"}, concurrency={"max_runs": 1}))
    sim.start()
    actions = sim.send(WORKFLOW_CANCEL_REQUESTED, data={"reason": "no"})
    assert sim.state.status == "cancelled"
    assert dispatched(actions) == []
    assert not of(actions, RemoveWaiter)


def test_cancel_on_registers_waiters_and_cancels_on_match() -> None:
    sim = Sim(
        wf(
            {"id": "a"},
            cancel_on=[{"event": "order.cancelled", "match": {"order_id": "input.id"}}],
        )
    )
    actions = sim.start({"id": 7})
    waiters = of(actions, RegisterWaiter)
    assert [(w.step_id, w.event, w.match) for w in waiters] == [
        (f"{CANCEL_WAITER_PREFIX}0", "order.cancelled", {"order_id": 7})
    ]
    actions = sim.send(
        STEP_WAIT_MATCHED,
        f"{CANCEL_WAITER_PREFIX}0",
        data={"event": {"order_id": 7}, "name": "order.cancelled"},
    )
    assert sim.state.status == "cancelled"
    assert "order.cancelled" in (sim.state.error.message if sim.state.error else "")
    assert [r.step_id for r in of(actions, RemoveWaiter)] == [f"{CANCEL_WAITER_PREFIX}0"]


def test_cancel_on_waiters_are_removed_when_the_run_completes() -> None:
    sim = Sim(wf({"id": "a"}, cancel_on=[{"event": "stop"}]))
    sim.start()
    actions = sim.complete("a", 1)
    assert sim.state.status == "completed"
    assert [r.event for r in of(actions, RemoveWaiter)] == ["stop"]


def test_cancel_on_rule_whose_path_is_missing_is_not_registered() -> None:
    sim = Sim(wf({"id": "a"}, cancel_on=[{"event": "stop", "match": {"k": "input.missing"}}]))
    actions = sim.start({})
    assert of(actions, RegisterWaiter) == []
    assert dispatched(actions) == ["a"]


def test_cancel_on_looks_back_to_the_start_of_the_run() -> None:
    # An event published after the start but before the engine registered the waiter (or,
    # for a pending run, before admission) must still cancel the run.
    sim = Sim(wf({"id": "a"}, concurrency={"max_runs": 1}, cancel_on=[{"event": "stop"}]))
    sim.start()
    created = sim.state.created_at
    actions = sim.send(WORKFLOW_ADMITTED)  # one second later on the Sim clock
    (waiter,) = of(actions, RegisterWaiter)
    assert waiter.registered_at - timedelta(microseconds=waiter.lookback_ns / 1000) == created
    # Started and registered in the same instant: the look-back still covers that instant.
    sim = Sim(wf({"id": "a"}, cancel_on=[{"event": "stop"}]))
    (waiter,) = of(sim.start(), RegisterWaiter)
    assert waiter.lookback_ns > 0
    assert waiter.registered_at == sim.state.created_at


def test_finish_purges_timers_only_when_the_run_may_have_some() -> None:
    from dagnats.dag.machine.actions import FinishRun

    plain = Sim(wf({"id": "a"}))
    plain.start()
    assert of(plain.complete("a", 1), FinishRun)[0].timers is False
    timed = Sim(wf({"id": "a", "timeout": "1m"}))
    timed.start()
    assert of(timed.complete("a", 1), FinishRun)[0].timers is True
    retried = Sim(wf({"id": "a", "retry": {"max_attempts": 2}}))
    retried.start()
    assert of(retried.complete("a", 1), FinishRun)[0].timers is True
