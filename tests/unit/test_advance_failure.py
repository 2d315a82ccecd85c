"""Methodology: failure scenarios (on_failure, compensation) driven step by step via advance()."""

from __future__ import annotations

from dagnats.dag.machine.actions import (
    CancelChildRun,
    DeadLetter,
    DispatchTask,
    FinishRun,
    StartChildRun,
)
from tests.unit.advance_harness import Sim, dispatched, of, records, reference, wf


def test_reference_on_failure_runs_only_after_retries_are_exhausted() -> None:
    sim = Sim(reference("retry-errors.json"))
    assert dispatched(sim.start("u")) == ["fetch"]
    for _ in range(3):  # max_attempts 3: retries after the first failure
        acts = sim.fail("fetch", "timeout")
        assert dispatched(acts) == [] and sim.step("report-error").status == "pending"
        sim.fire(sim.timer("retry", acts))
    acts = sim.fail("fetch", "timeout", error_type="HTTPError")
    assert of(acts, DeadLetter)[0].attempts == 4
    assert sim.step("fetch").status == "recovered"
    assert [e.type for e in records(acts)] == ["step.recovered"]
    task = of(acts, DispatchTask)[0]
    assert task.step_id == "report-error"
    assert task.input == {
        "failed_step": "fetch",
        "error": "timeout",  # Go's form: the message
        "error_type": "HTTPError",
    }
    assert sim.step("report-error").handling == "fetch"
    assert sim.step("process").status == "pending"  # not before the handler is done
    acts = sim.complete("report-error", {"reported": True})
    assert sim.step("fetch").output == {"reported": True}
    assert of(acts, DispatchTask)[0].input == {"reported": True}  # the run goes on
    sim.complete("process", "p")
    assert sim.state.status == "completed" and sim.state.output == "p"


def test_reference_success_never_runs_the_handler() -> None:
    sim = Sim(reference("retry-errors.json"))
    sim.start()
    sim.complete("fetch", 1)
    sim.complete("process", 2)
    assert sim.state.status == "completed" and sim.state.output == 2
    assert sim.step("report-error").status == "skipped"
    assert "report-error" not in {t.step_id for t in of(sim.all, DispatchTask)}


def test_recovered_sink_output_is_the_handler_output() -> None:
    sim = Sim(wf({"id": "a", "on_failure": "h"}, {"id": "h"}))
    sim.start()
    sim.fail("a", retryable=False)
    sim.complete("h", "fallback")
    assert sim.state.status == "completed" and sim.state.output == "fallback"
    assert sim.step("a").status == "recovered"


def test_failing_handler_fails_the_run() -> None:
    sim = Sim(wf({"id": "a", "on_failure": "h"}, {"id": "h"}, {"id": "b"}))
    sim.start()
    sim.fail("a", "first", retryable=False)
    acts = sim.fail("h", "second", retryable=False)
    assert sim.state.status == "failed"
    assert sim.state.error is not None and sim.state.error.step_id == "a"
    assert "'h'" in sim.state.error.message and "second" in sim.state.error.message
    assert sim.step("a").status == "failed" and sim.step("b").status == "cancelled"
    assert of(acts, FinishRun)[0].status == "failed"


def test_shared_handler_serves_each_failing_step_in_turn() -> None:
    sim = Sim(wf({"id": "a", "on_failure": "h"}, {"id": "b", "on_failure": "h"}, {"id": "h"}))
    sim.start()
    sim.fail("a", retryable=False)
    acts = sim.fail("b", retryable=False)
    assert dispatched(acts) == []  # h is busy with a
    acts = sim.complete("h", "for-a")
    task = of(acts, DispatchTask)[0]
    assert task.input["failed_step"] == "b" and task.iteration == 1
    assert task.dedup_id == "r1.h.1.1" and task.idempotency_key == "r1.h.b"
    sim.complete("h", "for-b")
    assert sim.state.status == "completed"
    assert sim.state.output == {"a": "for-a", "b": "for-b"}


def _saga() -> Sim:
    return Sim(
        wf(
            {"id": "a", "compensate": "undo-a"},
            {"id": "b", "compensate": "undo-b"},
            {"id": "c", "compensate": "undo-c", "depends_on": ["a"]},
            {"id": "d", "depends_on": ["b", "c"]},
            {"id": "e"},
            {"id": "undo-a"},
            {"id": "undo-b"},
            {"id": "undo-c"},
        )
    )


def test_compensation_runs_one_at_a_time_in_reverse_completion_order() -> None:
    sim = _saga()
    sim.start("in")
    sim.complete("b", "B")  # completion order: b, a, c
    sim.complete("a", "A")
    sim.complete("c", "C")
    acts = sim.fail("d", "broken", retryable=False)
    assert sim.state.compensating == ["c", "a", "b"]
    assert sim.step("e").status == "cancelled"
    assert [e.type for e in records(acts)] == ["compensate.started", "compensate.step"]
    assert dispatched(acts) == ["undo-c"]
    first = of(acts, DispatchTask)[0]
    assert first.input == {
        "original_step": "c",
        "original_output": "C",
        "trigger_step": "d",
        "trigger_error": "broken",
        "trigger_error_type": "Error",
    }
    assert dispatched(sim.complete("undo-c")) == ["undo-a"]
    assert sim.send("step.completed", "e", attempt=1, data={"output": 1}) == []  # stale
    assert dispatched(sim.complete("undo-a")) == ["undo-b"]
    acts = sim.complete("undo-b")
    assert sim.state.status == "compensated"
    assert sim.state.error is not None and sim.state.error.step_id == "d"
    assert [e.type for e in records(acts)] == ["workflow.compensated"]
    finish = of(acts, FinishRun)[0]
    assert finish.status == "compensated" and finish.error is not None
    order = [t.step_id for t in of(sim.all, DispatchTask) if t.step_id.startswith("undo")]
    assert order == ["undo-c", "undo-a", "undo-b"]


def test_compensator_retries_then_failure_fails_the_run() -> None:
    sim = Sim(
        wf(
            {"id": "a", "compensate": "undo"},
            {"id": "b", "depends_on": ["a"]},
            {"id": "undo", "retry": {"max_attempts": 1, "initial_delay": "1s"}},
        )
    )
    sim.start()
    sim.complete("a")
    sim.fail("b", retryable=False)
    sim.fire(sim.timer("retry", sim.fail("undo", "nope")))
    sim.fail("undo", "nope again")
    assert sim.state.status == "failed"
    assert sim.state.error is not None
    assert sim.state.error.message.startswith("compensation of step 'a' failed")


def test_shared_compensator_runs_once_per_step() -> None:
    sim = Sim(
        wf({"id": "a", "compensate": "u"}, {"id": "b", "compensate": "u"}, {"id": "c"}, {"id": "u"})
    )
    sim.start()
    sim.complete("a", 1)
    sim.complete("b", 2)
    acts = sim.fail("c", retryable=False)
    assert of(acts, DispatchTask)[0].input["original_step"] == "b"
    acts = sim.complete("u")
    task = of(acts, DispatchTask)[0]
    assert task.input["original_step"] == "a" and task.dedup_id == "r1.u.1.1"
    sim.complete("u")
    assert sim.state.status == "compensated"


def test_without_completed_compensable_steps_the_run_just_fails() -> None:
    sim = Sim(wf({"id": "a", "compensate": "u"}, {"id": "b"}, {"id": "u"}))
    sim.start()
    sim.fail("b", retryable=False)
    assert sim.state.status == "failed" and sim.step("u").status == "skipped"


def test_approval_rejection_triggers_on_failure() -> None:
    sim = Sim(
        wf(
            {"id": "ok", "type": "approval", "on_failure": "h", "config": {"timeout": "1h"}},
            {"id": "next", "depends_on": ["ok"]},
            {"id": "h"},
        )
    )
    sim.start()
    acts = sim.send("step.approval.rejected", "ok", data={"reason": "too risky"})
    assert sim.step("ok").status == "recovered"
    assert not of(acts, DeadLetter)  # nothing a replay could redo
    task = of(acts, DispatchTask)[0]
    assert task.step_id == "h" and "too risky" in task.input["error"]
    sim.complete("h", "escalated")
    assert of(sim.last, DispatchTask)[0].input == "escalated"


def test_sub_workflow_failure_triggers_compensation() -> None:
    sim = Sim(
        wf(
            {"id": "reserve", "compensate": "release"},
            {
                "id": "pay",
                "type": "sub_workflow",
                "depends_on": ["reserve"],
                "config": {"workflow": "payment"},
            },
            {"id": "release"},
        )
    )
    sim.start()
    acts = sim.complete("reserve", {"seat": 7})
    child = of(acts, StartChildRun)[0]
    assert child.child_run_id == "r1-pay-1" and child.input == {"seat": 7} and child.depth == 1
    data = {"child_run_id": child.child_run_id, "status": "failed", "error": "card declined"}
    acts = sim.send("step.child.failed", "pay", data=data)
    assert not of(acts, CancelChildRun)  # the child is already over
    task = of(acts, DispatchTask)[0]
    assert task.step_id == "release" and task.input["original_output"] == {"seat": 7}
    assert "card declined" in task.input["trigger_error"]
    sim.complete("release")
    assert sim.state.status == "compensated"


def test_cancel_during_compensation_stops_it() -> None:
    sim = Sim(wf({"id": "a", "compensate": "u"}, {"id": "b", "depends_on": ["a"]}, {"id": "u"}))
    sim.start()
    sim.complete("a")
    sim.fail("b", retryable=False)
    sim.send("workflow.cancel_requested", data={"reason": "stop"})
    assert sim.state.status == "cancelled" and sim.step("u").status == "cancelled"
