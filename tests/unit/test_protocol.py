"""The wire protocol: dedup-id formats, message round trips and keys are pinned here.

Dedup ids must never change shape: the streams' dedup window and crash recovery compare
them byte for byte with ids written by other processes (and other versions).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from dagnats.protocol import dedup, keys
from dagnats.protocol import events as ev
from dagnats.protocol.messages import (
    ApprovalRecord,
    DeadLetterMessage,
    DeferredTask,
    EventWaiter,
    TaskMessage,
    TimerMessage,
)

WHEN = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def _task(item: int | None = None) -> TaskMessage:
    return TaskMessage(
        run_id="r1",
        workflow="wf",
        step_id="s",
        task="t",
        attempt=2,
        iteration=1,
        item=item,
        idempotency_key="r1.s",
        dedup_id=dedup.task_id("r1", "s", 2, 1, item),
    )


# --- dedup ids of inputs -------------------------------------------------------------------


def test_workflow_started_is_unique_per_request() -> None:
    event, dedup_id = ev.workflow_started("r1", "wf", 3, {"a": 1}, idempotency_key=None, nonce="ab")
    assert dedup_id == "r1.started.ab"
    assert event.type == ev.WORKFLOW_STARTED
    data = {"workflow": "wf", "revision": 3, "input": {"a": 1}, "idempotency_key": None}
    assert event.data == data
    _, one = ev.workflow_started("r1", "wf", 3, None, idempotency_key="k")
    _, two = ev.workflow_started("r1", "wf", 3, None, idempotency_key="k")
    assert one != two
    assert one.startswith("r1.started.") and len(one) == len("r1.started.") + 12


def test_child_started() -> None:
    parent = {"run_id": "p", "step_id": "s", "depth": 1}
    event, dedup_id = ev.child_started("c1", "sub", 2, [1], parent=parent, depth=1)
    assert dedup_id == "c1.started"
    assert event.run_id == "c1"
    data = {"workflow": "sub", "revision": 2, "input": [1], "parent": parent, "depth": 1}
    assert event.data == data


@pytest.mark.parametrize(
    ("by", "expected"),
    [("request", "r1.cancel"), ("parent", "r1.cancel.parent"), ("queue", "r1.cancel.queue")],
)
def test_cancel_requested(by: ev.CancelCause, expected: str) -> None:
    event, dedup_id = ev.cancel_requested("r1", "why", by=by)
    assert dedup_id == expected
    assert (event.type, event.data) == (ev.WORKFLOW_CANCEL_REQUESTED, {"reason": "why"})


def test_workflow_admitted() -> None:
    event, dedup_id = ev.workflow_admitted("r1")
    assert (event.type, dedup_id) == (ev.WORKFLOW_ADMITTED, "r1.admitted")


def test_task_events_derive_from_the_task_dedup_id() -> None:
    tm = _task()
    assert tm.dedup_id == "r1.s.2.1"
    started, started_id = ev.step_started(tm, {"worker": "w"})
    assert started_id == "r1.s.2.1.started"
    assert (started.step_id, started.attempt, started.iteration) == ("s", 2, 1)
    for make, type_ in (
        (ev.step_completed, ev.STEP_COMPLETED),
        (ev.step_failed, ev.STEP_FAILED),
        (ev.step_continue, ev.STEP_CONTINUE),
    ):
        event, dedup_id = make(tm, {})
        assert (event.type, dedup_id) == (type_, "r1.s.2.1.result")
    lost, lost_id = ev.worker_lost(tm, 5)
    assert lost_id == "r1.s.2.1.lost"
    assert lost.data["deliveries"] == 5 and lost.data["error_type"] == "WorkerLost"


def test_step_result_refuses_other_types() -> None:
    with pytest.raises(ValueError, match="not a step result"):
        ev.step_result(_task(), ev.STEP_STARTED, {})


def test_map_instance_task_id() -> None:
    tm = _task(item=4)
    assert tm.dedup_id == "r1.s.2.i4"
    event, dedup_id = ev.step_completed(tm, {"output": 1})
    assert (event.item, dedup_id) == (4, "r1.s.2.i4.result")


def test_timer_fired() -> None:
    timer = TimerMessage(
        run_id="r1",
        step_id="s",
        kind="retry",
        fire_at=WHEN,
        data={"kind": "retry", "attempt": 3, "iteration": 0, "item": 1},
        dedup_id="r1.s.3.i1.retry",
    )
    event, dedup_id = ev.timer_fired(timer)
    assert dedup_id == "fired.r1.s.3.i1.retry"
    assert (event.type, event.attempt, event.iteration, event.item) == (ev.TIMER_FIRED, 3, 0, 1)


def test_wait_matched_and_decisions() -> None:
    event, dedup_id = ev.wait_matched("r1", "w", "order.paid", {"id": 1})
    assert dedup_id == "r1.w.matched"
    assert event.data == {"event": {"id": 1}, "name": "order.paid"}
    token = "ab" * 32
    approved, approved_id = ev.step_approved(token, "r1", "a", {"ok": True})
    rejected, rejected_id = ev.step_rejected(token, "r1", "a", "no")
    assert approved_id == rejected_id == f"decided.{token}"
    assert (approved.type, approved.data) == (ev.STEP_APPROVED, {"data": {"ok": True}})
    assert (rejected.type, rejected.data) == (ev.STEP_REJECTED, {"reason": "no"})


def test_child_results_go_to_the_parent() -> None:
    done, done_id = ev.child_completed("p", "s", "c", {"x": 1})
    failed, failed_id = ev.child_failed("p", "s", "c", "cancelled", "boom")
    assert done_id == failed_id == "c.finish.parent"
    assert (done.run_id, done.step_id, done.type) == ("p", "s", ev.CHILD_COMPLETED)
    assert done.data == {"child_run_id": "c", "status": "completed", "output": {"x": 1}}
    assert failed.data == {"child_run_id": "c", "status": "cancelled", "error": "boom"}


# --- dedup ids of records and other messages ----------------------------------------------


def test_record_ids() -> None:
    assert dedup.record_id("r1", ev.WORKFLOW_COMPLETED) == "r1.workflow.completed"
    assert dedup.record_id("r1", ev.STEP_SKIPPED, "s", None, 2) == "r1.s.0.2.step.skipped"
    assert dedup.record_id("r1", ev.STEP_MAP_STARTED, "m", 1) == "r1.m.1.0.step.map.started"
    assert dedup.record_id("r1", ev.STEP_RETRYING, "m", 1, 0, 3) == "r1.m.1.i3.step.retrying"
    _, signal_id = ev.signal_received("r1", "go", {"a": 1}, 7)
    assert signal_id == "signal.r1.go.7"
    failed, failed_id = ev.engine_failed("r1", "bad")
    assert failed_id == "r1.failed.engine"
    assert failed.data == {"error": {"message": "bad", "type": "EngineError"}}
    requested, requested_id = ev.approval_requested("r1", "a", "tok", WHEN, "ok?")
    assert requested_id == f"r1.a.approval.{WHEN.timestamp()}" == "r1.a.approval.1893553445.678"
    assert requested.data == {"token": "tok", "expires_at": WHEN.isoformat(), "message": "ok?"}


def test_timer_and_task_ids() -> None:
    assert dedup.timer_id("r1", "workflow_timeout") == "r1.workflow_timeout"
    assert dedup.timer_id("r1", "sleep", "s", 1) == "r1.s.1.0.sleep"
    assert dedup.timer_id("r1", "loop_delay", "s", 0, 4) == "r1.s.0.4.loop_delay"
    assert dedup.timer_id("r1", "retry", "s", 2, 0, 5) == "r1.s.2.i5.retry"
    assert dedup.task_id("r1", "s", 1, 0) == "r1.s.1.0"
    assert dedup.deferred_task_id("r1.s.1.0") == "defer.r1.s.1.0"
    assert dedup.dead_letter_id("r1", "s", None, 3) == "dead.r1.s.None.3"
    assert dedup.dead_letter_id("r1", "s", 2, 3) == "dead.r1.s.2.3"
    assert dedup.engine_dead_letter_id(42) == "dead.engine.42"


# --- keys ---------------------------------------------------------------------------------


def test_keys() -> None:
    assert keys.attempt_key("r", "s", 1, 2, None) == "r.s.1.2"
    assert keys.attempt_key("r", "s", 1, 2, 3) == "r.s.1.i3"
    assert keys.idempotency_key("r", "s", None, None) == "r.s"
    assert keys.idempotency_key("r", "s", 3, None) == "r.s.3"
    assert keys.idempotency_key("r", "s", None, "h") == "r.s.h"
    assert keys.payload_key("r", "s", 1, 0, None, "input") == "r/s/1.0/input"
    assert keys.payload_key("r", "s", 1, 0, 7, "output") == "r/s/1.0.i7/output"
    assert keys.record_payload_key("r", "r.workflow.completed") == "r/records/r.workflow.completed"
    assert keys.checkpoint_key("r", "s") == "r.s"
    assert keys.checkpoint_key("r", "s", 2) == "r.s.2"
    assert keys.signal_key("r", "go-1") == "r.go-1"
    assert keys.waiter_key("order.paid", "r", "w") == "6f726465722e70616964.r.w"
    assert keys.waiters_of("order.paid") == "6f726465722e70616964.>"
    assert keys.approval_ref_key("r", "a", WHEN) == "step.r.a.1893553445678"


@pytest.mark.parametrize("name", ["a.b", "", "a b", "é"])
def test_signal_key_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid signal name"):
        keys.signal_key("r", name)


# --- messages -----------------------------------------------------------------------------


def test_timer_message_round_trip_and_old_spelling() -> None:
    deferred = TimerMessage(
        run_id="r1",
        step_id="s",
        kind="dispatch",
        fire_at=WHEN,
        data={"kind": "dispatch"},
        dedup_id="defer.r1.s.1.0",
        task=DeferredTask(
            subject="task.t",
            body="{}",
            task_name="t",
            holder="r1.s.1.0",
            rate_limit=[5, 1_000_000_000],
            max_task_concurrency=None,
        ),
    )
    back = TimerMessage.model_validate_json(deferred.encode())
    assert back == deferred
    assert back.task is not None
    assert back.task.limits() == {
        "task_name": "t",
        "holder": "r1.s.1.0",
        "rate_limit": [5, 1_000_000_000],
        "max_task_concurrency": None,
        "keyed_rate": None,
    }
    # What the engine wrote before the model (json.dumps of isoformat) still reads.
    old = json.dumps(
        {
            "run_id": "r1",
            "step_id": None,
            "kind": "workflow_timeout",
            "fire_at": WHEN.isoformat(),
            "data": {"kind": "workflow_timeout"},
            "dedup_id": "r1.workflow_timeout",
        }
    )
    timer = TimerMessage.model_validate_json(old)
    assert (timer.fire_at, timer.step_id, timer.task) == (WHEN, None, None)


def test_waiter_round_trip() -> None:
    waiter = EventWaiter(
        run_id="r", step_id="w", event="e", match={"id": 1}, lookback_ns=5, registered_at=WHEN
    )
    assert EventWaiter.model_validate_json(waiter.encode()) == waiter
    assert set(json.loads(waiter.encode())) == {
        "run_id",
        "step_id",
        "event",
        "match",
        "lookback_ns",
        "registered_at",
        "as_text",
    }


def test_approval_record_decided() -> None:
    record = ApprovalRecord(run_id="r", step_id="a", expires_at=WHEN, state="open")
    assert json.loads(record.encode()) == {
        "run_id": "r",
        "step_id": "a",
        "expires_at": "2030-01-02T03:04:05.678000Z",
        "state": "open",
    }
    used = record.decided({"decision": "rejected", "reason": "no"})
    assert (used.state, used.decision, used.reason) == ("used", "rejected", "no")
    assert ApprovalRecord.model_validate_json(used.encode()) == used
    assert record.state == "open"  # a new record, not a change of the old one


def test_dead_letter_round_trip() -> None:
    task = DeadLetterMessage(
        run_id="r",
        step_id="s",
        item=None,
        task="t",
        input={"a": 1},
        error={"message": "boom", "type": "X"},
        attempts=3,
        ts=WHEN,
    )
    assert DeadLetterMessage.model_validate_json(task.encode()) == task
    engine = DeadLetterMessage(run_id="r", event={"type": "x"}, error="cannot apply")
    assert json.loads(engine.encode()) == {
        "run_id": "r",
        "event": {"type": "x"},
        "error": "cannot apply",
    }


def test_task_message_round_trip() -> None:
    tm = _task(item=2)
    assert TaskMessage.model_validate_json(tm.encode()) == tm
    assert "timeout_ns" not in json.loads(tm.encode())


def test_api_idempotency_keys() -> None:
    from dagnats.protocol import keys as pkeys

    key = pkeys.start_idempotency_key("wf", "order-1")
    assert key.startswith("wf.") and len(key) == len("wf.") + 40
    assert key == pkeys.start_idempotency_key("wf", "order-1")
    assert pkeys.deleted_run_key("abc") == "deleted.abc"
