"""Methodology: drive advance() event by event with a fake clock; assert state and actions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dagnats.dag.machine.actions import (
    CancelChildRun,
    DispatchTask,
    FinishRun,
    RemoveWaiter,
    ScheduleTimer,
)
from dagnats.dag.machine.advance import advance, initial_state
from dagnats.protocol.events import Event
from tests.unit.advance_harness import T0, Sim, dispatched, of, records, reference, wf

# --- start ---------------------------------------------------------------------------------


def test_start_dispatches_every_root_with_the_run_input() -> None:
    sim = Sim(wf({"id": "a"}, {"id": "b"}, {"id": "c", "depends_on": ["a", "b"]}))
    acts = sim.start({"n": 1})
    assert sim.state.status == "running"
    assert sim.state.created_at == sim.now
    assert dispatched(acts) == ["a", "b"]
    task = of(acts, DispatchTask)[0]
    assert task.input == {"n": 1}
    assert (task.attempt, task.iteration, task.item) == (1, 0, None)
    assert task.dedup_id == "r1.a.1.0"
    assert task.idempotency_key == "r1.a"
    assert sim.step("a").status == "queued" and sim.step("a").attempts == 1
    assert sim.step("c").status == "pending"


def test_dispatch_carries_step_options() -> None:
    defn = wf(
        {
            "id": "a",
            "task": "do-a",
            "timeout": "30s",
            "worker_group": "gpu",
            "rate_limit": {"limit": 5, "period": "1m"},
            "max_task_concurrency": 3,
        }
    )
    task = of(Sim(defn).start(), DispatchTask)[0]
    assert task.task == "do-a" and task.workflow == "w"
    assert task.timeout_ns == 30_000_000_000
    assert task.worker_group == "gpu"
    assert task.rate_limit == (5, 60_000_000_000)
    assert task.max_task_concurrency == 3


def test_handler_without_dependencies_never_starts_first() -> None:
    sim = Sim(reference("retry-errors.json"))
    acts = sim.start({"url": "x"})
    assert dispatched(acts) == ["fetch"]
    assert sim.step("report-error").status == "pending"


def test_workflow_timeout_timer_scheduled_at_start() -> None:
    sim = Sim(wf({"id": "a"}, timeout="1h"))
    acts = sim.start()
    timer = sim.timer("workflow_timeout", acts)
    assert timer.fire_at == sim.now + timedelta(hours=1)
    assert timer.step_id is None


def test_second_start_is_a_no_op() -> None:
    sim = Sim(wf({"id": "a"}))
    sim.start(1)
    before = sim.state.model_dump(exclude={"last_seq", "updated_at"})
    assert sim.start(2) == []
    assert sim.state.model_dump(exclude={"last_seq", "updated_at"}) == before


def test_first_event_must_be_start() -> None:
    with pytest.raises(ValueError, match=r"workflow\.started"):
        advance(wf({"id": "a"}), None, Event(type="step.completed", run_id="r1"))


def test_initial_state_reads_parent_depth_and_key() -> None:
    event = Event(
        type="workflow.started",
        run_id="c1",
        ts=T0,
        data={
            "input": 3,
            "revision": 2,
            "parent": {"run_id": "p", "step_id": "s", "depth": 2},
            "idempotency_key": "k",
        },
    )
    state = initial_state(wf({"id": "a"}), event)
    assert state.revision == 2 and state.depth == 2 and state.idempotency_key == "k"
    assert state.parent is not None and state.parent.run_id == "p"
    assert set(state.steps) == {"a"} and state.steps["a"].status == "pending"


# --- readiness and inputs --------------------------------------------------------------------


def test_one_dependency_passes_its_output() -> None:
    sim = Sim(wf({"id": "a"}, {"id": "b", "depends_on": ["a"]}))
    sim.start("in")
    acts = sim.complete("a", "out-a")
    assert of(acts, DispatchTask)[0].input == "out-a"
    assert sim.step("b").input == "out-a"


def test_several_dependencies_pass_a_dict_and_wait_for_all() -> None:
    sim = Sim(wf({"id": "a"}, {"id": "b"}, {"id": "c", "depends_on": ["a", "b"]}))
    sim.start()
    assert dispatched(sim.complete("a", 1)) == []
    acts = sim.complete("b", 2)
    assert of(acts, DispatchTask)[0].input == {"a": 1, "b": 2}


def test_skipped_dependency_contributes_none_and_counts_as_done() -> None:
    sim = Sim(
        wf(
            {"id": "a"},
            {"id": "b", "depends_on": ["a"], "skip_if": "input == 'skip'"},
            {"id": "c", "depends_on": ["b"]},
            {"id": "d", "depends_on": ["a", "b"]},
        )
    )
    sim.start()
    acts = sim.complete("a", "skip")
    assert sim.step("b").status == "skipped"
    assert [e.type for e in records(acts)] == ["step.skipped"]
    tasks = {t.step_id: t.input for t in of(acts, DispatchTask)}
    assert tasks == {"c": None, "d": {"a": "skip", "b": None}}


def test_skip_if_false_runs_the_step() -> None:
    sim = Sim(wf({"id": "a", "skip_if": "input.flag == true"}))
    assert dispatched(sim.start({"flag": False})) == ["a"]


def test_skip_if_can_read_run_input_and_other_steps() -> None:
    sim = Sim(
        wf(
            {"id": "a"},
            {"id": "b", "depends_on": ["a"], "skip_if": "steps.a.output.n > 1 and run.input.go"},
        )
    )
    sim.start({"go": True})
    sim.complete("a", {"n": 2})
    assert sim.step("b").status == "skipped"


def test_skipping_the_only_step_completes_the_run_with_none() -> None:
    sim = Sim(wf({"id": "a", "skip_if": "true"}))
    acts = sim.start()
    assert sim.state.status == "completed" and sim.state.output is None
    assert of(acts, FinishRun)[0].status == "completed"


def test_skip_if_evaluation_error_fails_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagnats.dag.definition.conditions import ConditionError
    from dagnats.dag.machine import _steps

    def broken(expr: str, scope: object) -> bool:
        raise ConditionError("cannot compare")

    monkeypatch.setattr(_steps, "evaluate_condition", broken)
    sim = Sim(wf({"id": "a", "skip_if": "input"}))
    sim.start()
    assert sim.state.status == "failed"
    err = sim.step("a").error
    assert err is not None and "skip_if" in err.message and not err.retryable


# --- worker events, duplicates, stale ------------------------------------------------------


def test_started_marks_running_only_for_the_current_attempt() -> None:
    sim = Sim(wf({"id": "a"}))
    sim.start()
    sim.send("step.started", "a", attempt=2, iteration=0)
    assert sim.step("a").status == "queued"
    sim.started("a")
    assert sim.step("a").status == "running"
    assert sim.step("a").attempt_started_at == sim.now


def test_duplicate_completion_is_a_no_op() -> None:
    sim = Sim(wf({"id": "a"}, {"id": "b", "depends_on": ["a"]}))
    sim.start()
    sim.complete("a", 1)
    before = sim.state.model_dump(exclude={"last_seq", "updated_at"})
    acts = sim.send("step.completed", "a", attempt=1, iteration=0, data={"output": 2})
    assert acts == []
    assert sim.state.model_dump(exclude={"last_seq", "updated_at"}) == before


def test_stale_attempt_results_are_ignored() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 2, "initial_delay": "1s"}}))
    sim.start()
    sim.fail("a")
    sim.fire(sim.timer("retry"))
    assert sim.step("a").attempts == 2
    assert sim.send("step.completed", "a", attempt=1, iteration=0, data={"output": 1}) == []
    assert sim.send("step.failed", "a", attempt=1, iteration=0, data={"error": "x"}) == []
    assert sim.step("a").status == "queued"


def test_completion_order_is_recorded() -> None:
    sim = Sim(wf({"id": "a"}, {"id": "b"}, {"id": "c"}))
    sim.start()
    for sid in ("b", "c", "a"):
        sim.complete(sid)
    assert sim.state.completion_order == ["b", "c", "a"]


def test_unknown_and_record_events_only_move_bookkeeping() -> None:
    sim = Sim(wf({"id": "a"}))
    sim.start()
    before = sim.state.model_dump(exclude={"last_seq", "updated_at"})
    for type_ in ("step.skipped", "workflow.completed", "something.else", "step.queued"):
        assert sim.send(type_, "a", attempt=1) == []
    assert sim.state.model_dump(exclude={"last_seq", "updated_at"}) == before
    assert sim.state.last_seq == sim.seq
    assert sim.state.updated_at == sim.now


def test_last_seq_never_goes_back() -> None:
    sim = Sim(wf({"id": "a"}))
    sim.start()
    sim.seq = 100
    sim.send("noise")
    sim.seq = 3
    sim.send("noise")
    assert sim.state.last_seq == 101


def test_clock_never_goes_backwards() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 1, "initial_delay": "10s"}}))
    sim.start()
    late = sim.now
    acts = sim.send(
        "step.failed", "a", attempt=1, iteration=0, data={"error": "x"}, ts=T0 - timedelta(hours=1)
    )
    assert sim.timer("retry", acts).fire_at == late + timedelta(seconds=10)


def test_terminal_run_ignores_everything() -> None:
    sim = Sim(wf({"id": "a"}))
    sim.start()
    sim.complete("a", 1)
    assert sim.state.status == "completed"
    frozen = sim.state
    for type_ in ("step.completed", "workflow.cancel_requested", "timer.fired", "step.failed"):
        assert sim.send(type_, "a", attempt=1, data={"kind": "retry"}) == []
        assert sim.state is frozen


# --- result ----------------------------------------------------------------------------------


def test_result_of_the_only_sink() -> None:
    sim = Sim(wf({"id": "a"}, {"id": "b", "depends_on": ["a"]}))
    sim.start()
    sim.complete("a", 1)
    acts = sim.complete("b", "done")
    assert sim.state.status == "completed" and sim.state.output == "done"
    finish = of(acts, FinishRun)[0]
    assert (finish.status, finish.output, finish.error) == ("completed", "done", None)
    assert [e.type for e in records(acts)] == ["workflow.completed"]
    assert sim.state.finished_at == sim.now


def test_result_over_several_sinks_and_untriggered_handlers_skipped() -> None:
    sim = Sim(
        wf(
            {"id": "a", "on_failure": "h"},
            {"id": "b", "depends_on": ["a"]},
            {"id": "c", "depends_on": ["a"]},
            {"id": "h"},
        )
    )
    sim.start()
    sim.complete("a", 0)
    sim.complete("b", "B")
    sim.complete("c", "C")
    assert sim.state.output == {"b": "B", "c": "C"}
    assert sim.step("h").status == "skipped"


def test_finish_run_names_the_parent() -> None:
    sim = Sim(wf({"id": "a"}))
    sim.start(1, parent={"run_id": "p1", "step_id": "child", "depth": 1})
    finish = of(sim.complete("a", 5), FinishRun)[0]
    assert (finish.parent_run_id, finish.parent_step_id) == ("p1", "child")


# --- cancellation and workflow timeout -------------------------------------------------------


def _waiting_run() -> Sim:
    sim = Sim(
        wf(
            {"id": "a"},
            {"id": "w", "type": "wait_for_event", "config": {"event": "paid"}},
            {"id": "s", "type": "sub_workflow", "config": {"workflow": "other"}},
            {"id": "d", "depends_on": ["a"]},
            timeout="1h",
        )
    )
    sim.start()
    return sim


def test_cancel_cancels_steps_children_and_waiters() -> None:
    sim = _waiting_run()
    acts = sim.send("workflow.cancel_requested", data={"reason": "user"})
    assert sim.state.status == "cancelled"
    assert set(sim.statuses().values()) == {"cancelled"}
    child = sim.step("s").child_run_id
    assert [c.child_run_id for c in of(acts, CancelChildRun)] == [child]
    assert [w.step_id for w in of(acts, RemoveWaiter)] == ["w"]
    finish = of(acts, FinishRun)[0]
    assert finish.status == "cancelled" and finish.child_steps == (child,)
    assert finish.error is not None and "user" in finish.error["message"]
    assert [e.type for e in records(acts)] == ["workflow.cancelled"]
    # late results of the cancelled steps change nothing
    assert sim.send("step.completed", "a", attempt=1, data={"output": 1}) == []


def test_workflow_timeout_fails_the_run() -> None:
    sim = _waiting_run()
    timer = of(sim.all, ScheduleTimer)[0]
    acts = sim.fire(timer)
    assert sim.state.status == "failed"
    assert sim.state.error is not None
    assert sim.state.error.message == "workflow timed out after 1h"
    assert of(acts, CancelChildRun)
    assert of(acts, RemoveWaiter)
    assert of(acts, FinishRun)[0].status == "failed"
    assert [e.type for e in records(acts)] == ["workflow.failed"]


def test_workflow_timeout_compensates_completed_work() -> None:
    sim = Sim(wf({"id": "a", "compensate": "undo"}, {"id": "b"}, {"id": "undo"}, timeout="10m"))
    acts = sim.start()
    timer = sim.timer("workflow_timeout", acts)
    sim.complete("a", 1)
    acts = sim.fire(timer)
    assert dispatched(acts) == ["undo"]
    assert sim.step("b").status == "cancelled"
    sim.complete("undo")
    assert sim.state.status == "compensated"
    assert sim.state.error is not None and "timed out" in sim.state.error.message


# --- concurrency.max_steps -------------------------------------------------------------------


def test_max_steps_holds_ready_steps_until_a_slot_frees() -> None:
    sim = Sim(wf({"id": "a"}, {"id": "b"}, {"id": "c"}, concurrency={"max_steps": 2}))
    acts = sim.start()
    assert dispatched(acts) == ["a", "b"]
    assert (sim.step("c").status, sim.step("c").waiting) == ("pending", "slot")
    acts = sim.complete("b")
    assert dispatched(acts) == ["c"]
    assert sim.step("c").status == "queued"


def test_max_steps_counts_map_instances_and_retry_keeps_its_slot() -> None:
    sim = Sim(
        wf(
            {"id": "src"},
            {"id": "m", "type": "map", "depends_on": ["src"]},
            {"id": "x", "retry": {"max_attempts": 1, "initial_delay": "1s"}},
            concurrency={"max_steps": 2},
        )
    )
    sim.start()
    sim.fail("x")  # x waits for its retry and keeps its slot
    acts = sim.complete("src", [10, 20, 30])
    assert dispatched(acts) == ["m[0]"]
    acts = sim.fire(of(sim.all, ScheduleTimer)[0])
    assert dispatched(acts) == ["x"]
    acts = sim.complete("m", 1, item=0)
    assert dispatched(acts) == ["m[1]"]
    acts = sim.complete("x")
    assert dispatched(acts) == ["m[2]"]
