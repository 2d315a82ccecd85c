"""Methodology: each step type's life driven through advance(); state and actions asserted."""

from __future__ import annotations

from datetime import timedelta

from dagnats.dag.definition.models import MAX_SUB_WORKFLOW_DEPTH, WorkflowDef
from dagnats.dag.machine.actions import (
    CancelChildRun,
    DispatchTask,
    FinishRun,
    RegisterWaiter,
    RemoveWaiter,
    RequestApproval,
    Respond,
    ScheduleTimer,
    StartChildRun,
)
from tests.unit.advance_harness import T0, Sim, dispatched, of, records, reference, wf

# --- agent loop ------------------------------------------------------------------------------


def test_reference_agent_loop_iterates_with_delay_and_stops_at_max_iterations() -> None:
    sim = Sim(reference("agent-loop.json"))  # max_iterations 10, loop_delay 1s
    sim.start(0)
    for i in range(1, 10):
        acts = sim.cont("counter", i)
        assert (sim.step("counter").status, sim.step("counter").waiting) == (
            "pending",
            "loop_delay",
        )
        timer = sim.timer("loop_delay", acts)
        assert timer.fire_at == sim.now + timedelta(seconds=1) and timer.data == {"iteration": i}
        acts = sim.fire(timer)
        task = of(acts, DispatchTask)[0]
        assert (task.iteration, task.attempt, task.input) == (i, 1, i)
        assert task.dedup_id == f"r1.counter.1.{i}"
    acts = sim.cont("counter", 10)  # a 10th continue would need an 11th iteration
    assert sim.state.status == "failed"
    err = sim.step("counter").error
    assert err is not None and "max_iterations" in err.message and "10" in err.message
    assert len(of(sim.all, DispatchTask)) == 10


def test_agent_loop_completes_normally() -> None:
    sim = Sim(wf({"id": "l", "type": "agent_loop", "config": {"max_iterations": 5}}))
    sim.start("q")
    acts = sim.cont("l", "q2")
    assert of(acts, DispatchTask)[0].input == "q2"  # no delay: dispatched at once
    sim.complete("l", "answer")
    assert sim.state.status == "completed" and sim.state.output == "answer"


def test_agent_loop_max_duration() -> None:
    sim = Sim(
        wf(
            {
                "id": "l",
                "type": "agent_loop",
                "config": {"max_iterations": 100, "max_duration": "1m"},
            }
        )
    )
    sim.start()
    sim.cont("l", 1)
    sim.now += timedelta(minutes=2)
    sim.cont("l", 2)
    assert sim.state.status == "failed"
    err = sim.step("l").error
    assert err is not None and "max_duration" in err.message and "1m" in err.message


def test_agent_loop_retries_count_per_iteration_and_stale_iterations_ignored() -> None:
    sim = Sim(
        wf(
            {
                "id": "l",
                "type": "agent_loop",
                "retry": {"max_attempts": 1, "initial_delay": "1s"},
                "config": {"max_iterations": 5},
            }
        )
    )
    sim.start()
    sim.fire(sim.timer("retry", sim.fail("l")))
    assert sim.step("l").attempts == 2
    sim.cont("l", "next")
    assert (sim.step("l").iteration, sim.step("l").attempts) == (1, 1)
    # a late result from iteration 0 is stale
    assert sim.send("step.completed", "l", attempt=1, iteration=0, data={"output": 0}) == []
    acts = sim.fail("l")  # iteration 1 has its own retry budget
    assert sim.timer("retry", acts).data == {"attempt": 2, "iteration": 1}


# --- map -------------------------------------------------------------------------------------


def test_reference_map_fans_out_and_in_in_index_order() -> None:
    sim = Sim(reference("map-step.json"))
    sim.start()
    acts = sim.complete("fetch-urls", ["u0", "u1", "u2"])
    assert dispatched(acts) == ["resize[0]", "resize[1]", "resize[2]"]
    tasks = of(acts, DispatchTask)
    assert [t.input for t in tasks] == ["u0", "u1", "u2"]
    assert tasks[1].dedup_id == "r1.resize.1.i1" and tasks[1].idempotency_key == "r1.resize.1"
    assert records(acts, "step.map.started")[0].data == {"items": 3}
    sim.complete("resize", "r2", item=2)
    sim.complete("resize", "r0", item=0)
    assert sim.send("step.completed", "resize", attempt=1, item=0, data={"output": "x"}) == []
    acts = sim.complete("resize", "r1", item=1)
    assert sim.step("resize").output == ["r0", "r1", "r2"]
    assert records(acts, "step.map.completed")
    assert of(acts, DispatchTask)[0].input == ["r0", "r1", "r2"]


def test_empty_map_completes_with_empty_list() -> None:
    sim = Sim(reference("map-step.json"))
    sim.start()
    acts = sim.complete("fetch-urls", [])
    assert sim.step("resize").status == "completed" and sim.step("resize").output == []
    assert dispatched(acts) == ["build-gallery"]


def test_map_rejects_non_arrays_and_too_many_items() -> None:
    sim = Sim(reference("map-step.json"))
    sim.start()
    sim.complete("fetch-urls", {"a": 1})
    err = sim.step("resize").error
    assert err is not None and "expects an array input, got object" in err.message
    assert not err.retryable and sim.state.status == "failed"

    sim = Sim(reference("map-step.json"))  # max_items 10
    sim.start()
    sim.complete("fetch-urls", list(range(11)))
    err = sim.step("resize").error
    assert err is not None and "max_items" in err.message and "11" in err.message


def test_map_concurrency_limits_instances_in_flight() -> None:
    sim = Sim(
        wf(
            {"id": "s"},
            {"id": "m", "type": "map", "depends_on": ["s"], "config": {"concurrency": 2}},
        )
    )
    sim.start()
    assert dispatched(sim.complete("s", [0, 1, 2, 3])) == ["m[0]", "m[1]"]
    assert dispatched(sim.complete("m", "a", item=1)) == ["m[2]"]
    assert dispatched(sim.complete("m", "b", item=0)) == ["m[3]"]
    sim.complete("m", "c", item=3)
    sim.complete("m", "d", item=2)
    assert sim.state.output == ["b", "a", "d", "c"]


def test_map_instance_retries_independently_and_failure_fails_the_map() -> None:
    sim = Sim(
        wf(
            {"id": "s"},
            {
                "id": "m",
                "type": "map",
                "depends_on": ["s"],
                "retry": {"max_attempts": 1, "initial_delay": "1s"},
            },
        )
    )
    sim.start()
    sim.complete("s", ["x", "y"])
    acts = sim.fail("m", item=1)
    timer = sim.timer("retry", acts)
    assert timer.data == {"attempt": 2, "iteration": 0, "item": 1}
    task = of(sim.fire(timer), DispatchTask)[0]
    assert (task.item, task.attempt, task.dedup_id) == (1, 2, "r1.m.2.i1")
    sim.fail("m", "bad y", item=1)
    assert sim.state.status == "failed"
    err = sim.step("m").error
    assert err is not None and err.item == 1 and "bad y" in err.message
    items = sim.step("m").items
    assert items is not None and [i.status for i in items] == ["cancelled", "failed"]
    assert sim.send("step.completed", "m", attempt=1, item=0, data={"output": 1}) == []


# --- sleep -----------------------------------------------------------------------------------


def test_sleep_for_a_duration_passes_input_through() -> None:
    sim = Sim(
        wf(
            {"id": "a"},
            {"id": "z", "type": "sleep", "depends_on": ["a"], "config": {"duration": "10m"}},
        )
    )
    sim.start()
    acts = sim.complete("a", "payload")
    timer = sim.timer("sleep", acts)
    assert timer.fire_at == sim.now + timedelta(minutes=10)
    assert records(acts, "step.sleep.started")[0].data == {"until": timer.fire_at.isoformat()}
    assert (sim.step("z").status, sim.step("z").waiting) == ("running", "sleep")
    acts = sim.fire(timer)
    assert records(acts, "step.sleep.completed")
    assert sim.state.status == "completed" and sim.state.output == "payload"


def test_sleep_until_a_literal_and_a_path() -> None:
    sim = Sim(wf({"id": "z", "type": "sleep", "config": {"until": "2030-06-01T00:00:00Z"}}))
    assert sim.timer("sleep", sim.start()).fire_at == T0.replace(month=6)

    sim = Sim(wf({"id": "z", "type": "sleep", "config": {"until": "input.wake"}}))
    assert sim.timer(
        "sleep", sim.start({"wake": "2030-01-02T00:00:00+00:00"})
    ).fire_at == T0 + timedelta(days=1)


def test_sleep_until_the_past_completes_at_once() -> None:
    sim = Sim(wf({"id": "z", "type": "sleep", "config": {"until": "run.input.t"}}))
    acts = sim.start({"t": "2020-01-01T00:00:00Z"})
    assert not of(acts, ScheduleTimer) and sim.state.status == "completed"


def test_sleep_with_a_bad_until_fails_naming_until() -> None:
    sim = Sim(wf({"id": "z", "type": "sleep", "config": {"until": "input.t"}}))
    sim.start({"t": "tomorrow"})
    err = sim.step("z").error
    assert sim.state.status == "failed" and err is not None and "until" in err.message
    sim = Sim(wf({"id": "z", "type": "sleep", "config": {"until": "input.t"}}))
    sim.start({})
    assert sim.state.status == "failed"


# --- wait_for_event --------------------------------------------------------------------------


def _wait_def() -> WorkflowDef:
    return wf(
        {
            "id": "w",
            "type": "wait_for_event",
            "config": {
                "event": "payment.received",
                "match": {"order_id": "input.order", "region": "run.input.region"},
                "timeout": "1h",
            },
        }
    )


def test_wait_for_event_registers_and_matches() -> None:
    sim = Sim(_wait_def())
    acts = sim.start({"order": 42, "region": "eu"})
    waiter = of(acts, RegisterWaiter)[0]
    assert waiter.event == "payment.received"
    assert waiter.match == {"order_id": 42, "region": "eu"}
    assert waiter.lookback_ns == 5_000_000_000 and waiter.registered_at == sim.now
    assert records(acts, "step.wait.started")
    timer = sim.timer("wait_timeout", acts)
    acts = sim.send("step.wait.matched", "w", data={"event": {"order_id": 42, "paid": 10}})
    assert of(acts, RemoveWaiter)[0].event == "payment.received"
    assert sim.state.output == {"order_id": 42, "paid": 10}
    assert sim.fire(timer) == []


def test_wait_for_event_timeout_completes_with_timeout_marker() -> None:
    sim = Sim(_wait_def())
    timer = sim.timer("wait_timeout", sim.start({"order": 1, "region": "us"}))
    acts = sim.fire(timer)
    assert of(acts, RemoveWaiter) and records(acts, "step.wait.timeout")
    assert sim.state.status == "completed" and sim.state.output == {"timeout": True}
    assert sim.send("step.wait.matched", "w", data={"event": {}}) == []


def test_wait_for_event_with_an_unresolvable_match_fails() -> None:
    sim = Sim(_wait_def())
    sim.start({"region": "eu"})
    err = sim.step("w").error
    assert sim.state.status == "failed" and err is not None and "order_id" in err.message


# --- approval --------------------------------------------------------------------------------


def test_approval_approved_outputs_the_data() -> None:
    sim = Sim(wf({"id": "ok", "type": "approval", "config": {"message": "ship it?"}}))
    acts = sim.start()
    req = of(acts, RequestApproval)[0]
    assert req.expires_at == sim.now + timedelta(hours=24) and req.message == "ship it?"
    assert sim.timer("approval_timeout", acts).fire_at == req.expires_at
    assert sim.step("ok").waiting == "approval"
    sim.send("step.approval.approved", "ok", data={"data": {"by": "ann"}})
    assert sim.state.output == {"by": "ann"}


def test_approval_rejected_or_expired_fails() -> None:
    sim = Sim(wf({"id": "ok", "type": "approval"}))
    sim.start()
    sim.send("step.approval.rejected", "ok", data={"reason": "no"})
    err = sim.step("ok").error
    assert err is not None and "no" in err.message and not err.retryable
    assert sim.state.status == "failed"

    sim = Sim(wf({"id": "ok", "type": "approval"}))
    sim.fire(sim.timer("approval_timeout", sim.start()))
    err = sim.step("ok").error
    assert err is not None and "expired after 24h" in err.message


# --- sub_workflow ----------------------------------------------------------------------------


def test_sub_workflow_completes_with_the_child_output() -> None:
    sim = Sim(wf({"id": "c", "type": "sub_workflow", "config": {"workflow": "x", "revision": 3}}))
    acts = sim.start("in")
    child = of(acts, StartChildRun)[0]
    assert (child.workflow, child.revision, child.input, child.detach) == ("x", 3, "in", False)
    assert sim.step("c").waiting == "child"
    # a result for another child id is stale
    assert sim.send("step.child.completed", "c", data={"child_run_id": "zzz", "output": 0}) == []
    sim.send("step.child.completed", "c", data={"child_run_id": child.child_run_id, "output": 9})
    assert sim.state.output == 9


def test_detached_sub_workflow_completes_at_once() -> None:
    sim = Sim(wf({"id": "c", "type": "sub_workflow", "config": {"workflow": "x", "detach": True}}))
    acts = sim.start()
    child = of(acts, StartChildRun)[0]
    assert child.detach and sim.state.output == {"child_run_id": child.child_run_id}
    assert of(acts, FinishRun)[0].child_steps == ()


def test_sub_workflow_depth_limit() -> None:
    sim = Sim(wf({"id": "c", "type": "sub_workflow", "config": {"workflow": "x"}}))
    parent = {"run_id": "p", "step_id": "s", "depth": MAX_SUB_WORKFLOW_DEPTH}
    sim.start(None, parent=parent)
    err = sim.step("c").error
    assert sim.state.status == "failed" and err is not None
    assert "MAX_SUB_WORKFLOW_DEPTH" in err.message and str(MAX_SUB_WORKFLOW_DEPTH) in err.message


def test_sub_workflow_retry_starts_a_new_child() -> None:
    sim = Sim(
        wf(
            {
                "id": "c",
                "type": "sub_workflow",
                "retry": {"max_attempts": 1, "initial_delay": "1s"},
                "config": {"workflow": "x"},
            }
        )
    )
    first = of(sim.start(), StartChildRun)[0]
    acts = sim.send(
        "step.child.failed", "c", data={"child_run_id": first.child_run_id, "error": "e"}
    )
    second = of(sim.fire(sim.timer("retry", acts)), StartChildRun)[0]
    assert second.child_run_id == "r1-c-2"
    stale = {"child_run_id": first.child_run_id, "output": 1}
    assert sim.send("step.child.completed", "c", data=stale) == []


def test_child_run_id_is_subject_safe() -> None:
    sim = Sim(wf({"id": "c", "type": "sub_workflow", "config": {"workflow": "x"}}), run_id="a.b*c")
    child = of(sim.start(), StartChildRun)[0]
    assert child.child_run_id == "a_b_c-c-1"


# --- respond ---------------------------------------------------------------------------------


def test_respond_completes_with_its_input() -> None:
    sim = Sim(
        wf(
            {"id": "a"},
            {"id": "r", "type": "respond", "depends_on": ["a"], "config": {"status": 201}},
        )
    )
    sim.start()
    acts = sim.complete("a", {"ok": True})
    resp = of(acts, Respond)[0]
    assert (resp.status, resp.data) == (201, {"ok": True})
    assert sim.state.output == {"ok": True}


def test_continue_outside_an_agent_loop_fails_the_step() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 3}}))
    sim.start()
    sim.cont("a", 1)
    err = sim.step("a").error
    assert sim.state.status == "failed" and err is not None and "agent_loop" in err.message


def test_sub_workflow_timeout_cancels_the_child_and_fails_the_attempt() -> None:
    sim = Sim(
        wf(
            {
                "id": "c",
                "type": "sub_workflow",
                "timeout": "5m",
                "retry": {"max_attempts": 1, "initial_delay": "1s"},
                "config": {"workflow": "x"},
            }
        )
    )
    acts = sim.start()
    first = of(acts, StartChildRun)[0]
    timer = sim.timer("step_timeout", acts)
    assert timer.fire_at == sim.now + timedelta(minutes=5)
    acts = sim.fire(timer)
    assert [c.child_run_id for c in of(acts, CancelChildRun)] == [first.child_run_id]
    err = sim.step("c").error
    assert err is not None and err.type == "Timeout" and "5m" in err.message
    acts = sim.fire(sim.timer("retry", acts))
    assert of(acts, StartChildRun)[0].child_run_id == "r1-c-2"
    assert sim.fire(timer) == []  # the first child's deadline is stale now
