"""Methodology: drive advance() with the Sim harness through ``workflow.retry_requested``:
each step type and failure shape is ended, retried, and checked for what runs again (the
dispatches and their ids), what stays (outputs of completed work), and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from dagnats.dag.machine.actions import (
    AdmitRun,
    DispatchTask,
    FinishRun,
    RecordEvent,
    RegisterWaiter,
    ScheduleTimer,
    StartChildRun,
)
from dagnats.dag.machine.advance import retry_refusal
from dagnats.dag.machine.state import ParentRef
from dagnats.protocol import events as ev
from tests.unit.advance_harness import Sim, dispatched, of, records, wf

FAST = {"max_attempts": 1, "strategy": "fixed", "initial_delay": "1s"}


def status(sim: Sim) -> str:
    return sim.state.status  # a function: mypy would keep narrowing the attribute


def retry(sim: Sim, n: int = 1) -> list[Any]:
    return sim.send(ev.WORKFLOW_RETRY_REQUESTED, data={"retry": n})


def chain() -> Sim:
    sim = Sim(wf({"id": "a"}, {"id": "b", "depends_on": ["a"]}, {"id": "c", "depends_on": ["b"]}))
    sim.start("in")
    sim.complete("a", "A")
    sim.fail("b", retryable=False)
    assert status(sim) == "failed"
    return sim


def test_retry_resumes_the_failed_step_only() -> None:
    sim = chain()
    actions = retry(sim)
    assert status(sim) == "running" and sim.state.retries == 1
    assert sim.state.error is None and sim.state.finished_at is None
    tasks = of(actions, DispatchTask)
    assert [(t.step_id, t.attempt, t.input, t.run_retry) for t in tasks] == [("b", 2, "A", 1)]
    assert tasks[0].dedup_id == "r1.b.2.0"  # a new attempt: never the first one's id
    assert sim.step("a").status == "completed" and sim.step("a").output == "A"
    assert sim.step("c").status == "pending"  # cancelled at the end, back to not begun
    sim.complete("b", "B")
    assert dispatched(sim.last) == ["c"]
    sim.complete("c", "C")
    assert status(sim) == "completed" and sim.state.output == "C"
    assert of(sim.last, FinishRun)[0].retries == 1
    # The run's own records after a retry get ids of their own.
    assert records(sim.last, ev.WORKFLOW_COMPLETED)


def test_records_and_finish_of_a_second_failure_are_new() -> None:
    sim = chain()
    first = [a.dedup_id for a in of(sim.all, RecordEvent)]
    retry(sim)
    sim.fail("b", retryable=False)
    assert status(sim) == "failed"
    ids = {a.dedup_id for a in of(sim.last, RecordEvent)}
    assert "r1.workflow.failed.retry1" in ids and not ids & set(first)


@pytest.mark.parametrize("data", [{"retry": 2}, {"retry": 0}, {"retry": "1"}, {}, None])
def test_only_the_next_retry_applies(data: Any) -> None:
    sim = chain()
    before = sim.state
    assert sim.send(ev.WORKFLOW_RETRY_REQUESTED, data=data) == []
    assert sim.state is before


def test_a_repeated_retry_event_is_a_no_op() -> None:
    sim = chain()
    retry(sim)
    assert retry(sim) == []  # the same retry again (a duplicate past the dedup window)
    assert sim.state.retries == 1


def test_refusals_name_the_reason() -> None:
    sim = Sim(wf({"id": "a"}))
    sim.start()
    assert "is running" in (retry_refusal(sim.state) or "")
    assert retry(sim) == [] and sim.state.retries == 0
    sim.complete("a", 1)
    assert "is completed" in (retry_refusal(sim.state) or "")
    child = sim.state.model_copy(
        update={"status": "failed", "parent": ParentRef(run_id="p", step_id="s")}
    )
    assert "retry the parent" in (retry_refusal(child) or "")
    undone = sim.state.model_copy(update={"status": "compensated"})
    assert "compensated" in (retry_refusal(undone) or "")
    midway = sim.state.model_copy(update={"status": "failed", "compensating": ["a"]})
    assert "while compensating" in (retry_refusal(midway) or "")
    assert retry_refusal(sim.state.model_copy(update={"status": "cancelled"})) is None


def test_the_retry_policy_counts_again_from_the_retry() -> None:
    sim = Sim(wf({"id": "a", "retry": FAST}))
    sim.start()
    sim.fail("a")
    sim.fire(sim.timer("retry"))
    sim.fail("a")
    assert status(sim) == "failed" and sim.step("a").attempts == 2
    retry(sim)
    assert sim.step("a").attempts == 3 and sim.step("a").retry_base == 2
    sim.fail("a")  # one retry left again
    assert sim.step("a").waiting == "retry"
    t = sim.timer("retry")
    assert t.dedup_id == "r1.a.4.0.retry"
    sim.fire(t)
    sim.fail("a")
    assert status(sim) == "failed"


def test_a_cancelled_run_resumes_in_flight_and_unbegun_steps() -> None:
    sim = Sim(wf({"id": "a"}, {"id": "b"}, {"id": "c", "depends_on": ["a", "b"]}))
    sim.start()
    sim.complete("a", 1)
    sim.send(ev.WORKFLOW_CANCEL_REQUESTED, data={"reason": "oops"})
    assert sim.statuses() == {"a": "completed", "b": "cancelled", "c": "cancelled"}
    actions = retry(sim)
    assert dispatched(actions) == ["b"] and of(actions, DispatchTask)[0].attempt == 2
    sim.complete("b", 2)
    assert of(sim.last, DispatchTask)[0].input == {"a": 1, "b": 2}


def test_a_map_keeps_its_completed_items() -> None:
    sim = Sim(
        wf(
            {"id": "src"},
            {
                "id": "m",
                "type": "map",
                "depends_on": ["src"],
                "config": {"max_items": 10, "concurrency": 2},
            },
        )
    )
    sim.start()
    sim.complete("src", [10, 20, 30, 40])
    sim.complete("m", "x0", item=0)
    sim.fail("m", item=1, retryable=False)  # item 2 was in flight: cancelled
    assert status(sim) == "failed"
    actions = retry(sim)
    assert dispatched(actions) == ["m[1]", "m[2]"]  # within the map's concurrency of 2
    assert [t.attempt for t in of(actions, DispatchTask)] == [2, 2]
    sim.complete("m", "x1", item=1)
    assert dispatched(sim.last) == ["m[3]"]
    sim.complete("m", "x2", item=2)
    sim.complete("m", "x3", item=3)
    assert status(sim) == "completed" and sim.state.output == ["x0", "x1", "x2", "x3"]


def test_an_agent_loop_resumes_at_its_iteration() -> None:
    sim = Sim(wf({"id": "loop", "type": "agent_loop", "config": {"max_iterations": 5}}))
    sim.start("seed")
    sim.cont("loop", "second")
    sim.fail("loop", retryable=False)
    actions = retry(sim)
    task = of(actions, DispatchTask)[0]
    assert (task.iteration, task.attempt, task.input) == (1, 2, "second")


def test_waiting_steps_start_over_with_new_ids() -> None:
    sim = Sim(
        wf(
            {"id": "nap", "type": "sleep", "config": {"duration": "1m"}},
            {"id": "w", "type": "wait_for_event", "config": {"event": "e", "timeout": "1h"}},
            {"id": "sub", "type": "sub_workflow", "config": {"workflow": "child"}},
        )
    )
    first = sim.start()
    sim.send(ev.WORKFLOW_CANCEL_REQUESTED, data={"reason": "stop"})
    actions = retry(sim)
    old = {t.dedup_id for t in of(first, ScheduleTimer)}
    new = {t.dedup_id for t in of(actions, ScheduleTimer)}
    assert new and not old & new
    assert of(actions, StartChildRun)[0].child_run_id == "r1-sub-2"
    assert [w.step_id for w in of(actions, RegisterWaiter)] == ["w"]


def test_an_interrupted_recovery_runs_the_step_again() -> None:
    sim = Sim(wf({"id": "a", "on_failure": "h"}, {"id": "h"}))
    sim.start()
    sim.fail("a", retryable=False)
    assert dispatched(sim.last) == ["h"]
    sim.send(ev.WORKFLOW_CANCEL_REQUESTED, data={"reason": "stop"})
    assert sim.step("a").status == "cancelled"  # its handler never finished
    actions = retry(sim)
    assert dispatched(actions) == ["a"]
    sim.fail("a", retryable=False)
    task = of(sim.last, DispatchTask)[0]
    assert task.step_id == "h" and task.dedup_id != "r1.h.1.0"
    sim.complete("h", "handled")
    assert status(sim) == "completed"


def test_the_workflow_timeout_counts_from_the_retry() -> None:
    sim = Sim(wf({"id": "a"}, timeout="1m"))
    first = sim.timer("workflow_timeout", sim.start())
    sim.fail("a", retryable=False)
    actions = retry(sim)
    second = sim.timer("workflow_timeout", actions)
    assert second.dedup_id == "r1.workflow_timeout.retry1" != first.dedup_id
    assert sim.fire(first) == [] and status(sim) == "running"  # armed before the retry
    sim.fire(second)
    assert status(sim) == "failed" and sim.state.error is not None
    assert "timed out" in sim.state.error.message


def test_cancel_on_watches_from_the_retry() -> None:
    sim = Sim(wf({"id": "a"}, cancel_on=[{"event": "stop"}]))
    sim.start()
    sim.fail("a", retryable=False)
    waiter = of(retry(sim), RegisterWaiter)[0]
    assert waiter.lookback_ns == 1  # the event that ended it before must not end it again


def test_a_limited_workflow_queues_for_a_slot_again() -> None:
    sim = Sim(wf({"id": "a"}, {"id": "b", "depends_on": ["a"]}, concurrency={"max_runs": 1}))
    sim.start()
    sim.send(ev.WORKFLOW_ADMITTED)
    sim.complete("a", 1)
    sim.fail("b", retryable=False)
    actions = retry(sim)
    assert status(sim) == "pending" and dispatched(actions) == []
    assert of(actions, AdmitRun) == [AdmitRun(run_id="r1", workflow="w", max_runs=1)]
    assert dispatched(sim.send(ev.WORKFLOW_ADMITTED)) == ["b"]
    assert status(sim) == "running"


def test_the_constructor_and_its_dedup_id() -> None:
    event, dedup_id = ev.retry_requested("r9", 3, "fixed")
    assert (event.type, event.data, dedup_id) == (
        ev.WORKFLOW_RETRY_REQUESTED,
        {"retry": 3, "reason": "fixed"},
        "r9.retry.3",
    )
    assert event.is_input
    for bad in (0, -1, True, "1"):
        with pytest.raises(ValueError, match="retry must be an integer"):
            ev.retry_requested("r9", bad)  # type: ignore[arg-type]
    started, _ = ev.workflow_started("r2", "w", 1, "x", idempotency_key=None, rerun_of="r1")
    sim = Sim(wf({"id": "a"}), run_id="r2")
    sim.send(ev.WORKFLOW_STARTED, data=started.data)
    assert sim.state.rerun_of == "r1"


def test_admission_ids_stay_and_a_readmission_gets_its_own() -> None:
    assert ev.workflow_admitted("r1")[1] == "r1.admitted"  # the first shape is unchanged
    assert ev.workflow_admitted("r1", "ab12")[1] == "r1.admitted.ab12"
