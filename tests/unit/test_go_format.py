"""Methodology: each Go form of DAGNATS-FORMAT.md loaded (and refused) through the public
loader, its meaning checked in the pure core with the advance harness, and the Go writer
checked on the same definitions. The integration twin is tests/integration/test_go_files.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dagnats import Workflow
from dagnats.cli import app
from dagnats.dag.definition.conditions import as_match_text, go_compare
from dagnats.dag.definition.models import EventMatch, SkipIf
from dagnats.dag.definition.rules import definition_problems, load_definition
from dagnats.dag.machine.actions import RegisterWaiter, RequestApproval
from dagnats.engine.correlator import matches
from dagnats.errors import DefinitionError
from tests.unit.advance_harness import T0, Sim, dispatched, of, wf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAMES = ("hello-world.json", "agent-loop.json", "map-step.json", "retry-errors.json")
S = 1_000_000_000


def base(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "w", "steps": list(steps), **top}


def refused(source: dict[str, Any]) -> str:
    with pytest.raises(DefinitionError) as caught:
        load_definition(source)
    return str(caught.value)


# --- what Go always writes ----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_reference_and_go_serialised_forms_load_equal(name: str) -> None:
    ref = load_definition((FIXTURES / "reference" / name).read_text())
    go = load_definition((FIXTURES / "go" / name).read_text())
    assert ref.schema_ == "../../docs/workflow-schema.json"
    assert ref.model_copy(update={"schema_": None}) == go


def test_go_spellings_of_nothing_mean_absent() -> None:
    go = load_definition(
        base(
            {"id": "a", "task": "a", "type": "normal", "timeout": 0, "depends_on": None},
            {"id": "z", "task": "", "type": "sleep", "timeout": 0, "config": {"duration": S}},
            {"id": "b", "task": "b", "depends_on": ["a"], "config": None, "timeout": "0s"},
            timeout=0,
            concurrency={"max_runs": 0},
            idempotency_key="",
        )
    )
    plain = load_definition(
        base({"id": "a"}, {"id": "z", "type": "sleep", "config": {"duration": "1s"}},
             {"id": "b", "depends_on": ["a"]}, concurrency={})
    )  # fmt: skip
    assert go == plain
    assert go.timeout is None and go.steps[0].timeout is None and go.steps[1].task is None
    assert plain.steps[0].task == "a"  # every worker step names its task once loaded


def test_task_empty_on_a_worker_step_is_refused() -> None:
    assert "step 'a' (index 0): field 'task': must not be empty" in refused(
        base({"id": "a", "task": ""})
    )


def test_aux_steps_must_agree_with_the_inference() -> None:
    steps = [{"id": "a", "on_failure": "h"}, {"id": "h"}]
    assert load_definition(base(*steps, aux_steps={"h": True})).aux_steps is None
    assert "step 'a': field 'aux_steps': is listed as a handler step" in refused(
        base(*steps, aux_steps={"h": True, "a": True})
    )
    assert "step 'h': field 'aux_steps': is a handler step" in refused(base(*steps, aux_steps={}))
    assert "unknown step 'q'" in refused(base(*steps, aux_steps={"h": True, "q": False}))


def test_schema_key_is_allowed_anywhere_but_must_be_a_string() -> None:
    hint = {"$schema": "x"}
    defn = load_definition(
        base(
            {"id": "a", **hint, "retry": {**hint, "max_attempts": 1}},
            {"id": "w", "type": "wait_for_event", "depends_on": ["a"],
             "config": {**hint, "event": "e", "match": {**hint, "left": "x", "right": "input.x"}}},
            **hint,
            concurrency={**hint, "max_runs": 2},
        )
    )  # fmt: skip
    assert defn.schema_ == "x" and defn.steps[0].retry is not None
    assert "'$schema' must be a string" in refused(base({"id": "a", "$schema": 1}))


def test_version_is_a_free_string_and_output_schema_is_kept() -> None:
    defn = load_definition(base({"id": "a"}, version="", output_schema={"type": "object"}))
    assert defn.version == "" and defn.output_schema == {"type": "object"}
    assert "'output_schema'" in refused(base({"id": "a"}, output_schema={"type": "nope"}))


# --- retry --------------------------------------------------------------------------------


def test_max_attempts_go_up_to_100000() -> None:
    assert load_definition(base({"id": "a", "retry": {"max_attempts": 100_000}}))
    assert "<= 100000" in refused(base({"id": "a", "retry": {"max_attempts": 100_001}}))


def test_legacy_retries_on_a_waiting_step_are_refused() -> None:
    step = {"id": "z", "type": "sleep", "retries": 2, "config": {"duration": "1s"}}
    assert "step 'z': field 'retries': a 'sleep' step is never retried" in refused(base(step))


# --- skip_if object form ------------------------------------------------------------------

GO_COMPARE = [
    ("==", 1, 1.0, True),
    ("<", 2, 10, True),
    ("<", "10", "2", True),  # strings: lexicographic
    ("!=", True, False, True),
    ("<", True, False, False),  # booleans: only == and !=
    ("==", None, None, False),  # anything else is false
    ("!=", 1, "1", False),  # mixed types: false, even for !=
    (">=", [1], [1], False),
]


@pytest.mark.parametrize(("op", "a", "b", "want"), GO_COMPARE)
def test_go_compare_rules(op: str, a: Any, b: Any, want: bool) -> None:
    assert go_compare(op, a, b) is want


def test_skip_if_object_skips_on_the_dependency_output() -> None:
    cond = {"step_id": "a", "field": "total", "op": ">", "value": 100}
    defn = wf({"id": "a"}, {"id": "b", "depends_on": ["a"], "skip_if": cond})
    assert isinstance(defn.steps[1].skip_if, SkipIf)
    sim = Sim(defn)
    sim.start()
    sim.complete("a", {"total": 150})
    assert sim.step("b").status == "skipped"
    sim = Sim(defn)
    sim.start()
    assert dispatched(sim.complete("a", {"total": "150"})) == ["b"]  # mixed types: false
    sim = Sim(defn)
    sim.start()
    assert dispatched(sim.complete("a", ["not", "an", "object"])) == ["b"]


def test_skip_if_object_rules_name_the_field() -> None:
    step = {"id": "b", "depends_on": ["a"]}
    cond = {"step_id": "x", "field": "f", "op": "==", "value": 1}
    assert "step 'b': field 'skip_if.step_id': must be one of the step's depends_on" in refused(
        base({"id": "a"}, {**step, "skip_if": cond})
    )
    bad_op = {**cond, "step_id": "a", "op": "=~"}
    assert "field 'skip_if.op': must be one of == != < > <= >= (got '=~')" in refused(
        base({"id": "a"}, {**step, "skip_if": bad_op})
    )
    assert load_definition(base({"id": "a"}, {**step, "skip_if": "input.x > 1"}))


# --- wait_for_event / cancel_on match -----------------------------------------------------


def wait_step(match: Any, **config: Any) -> dict[str, Any]:
    cfg = {"event": "paid", "match": match, **config}
    return {"id": "paid", "type": "wait_for_event", "depends_on": ["a"], "config": cfg}


def test_match_op_other_than_eq_is_refused_with_the_step_field_and_rule() -> None:
    match = {"left": "order_id", "op": "gt", "right": "input.order_id"}
    message = refused(base({"id": "a"}, wait_step(match)))
    assert message == (
        "step 'paid': field 'config.match.op': only \"eq\" is supported (got \"gt\")"
    )


@pytest.mark.parametrize(
    ("right", "rule"),
    [
        ("order_id", "must be 'input.<path>' or 'step.<id>.output.<path>'"),
        ("step.zz.output.id", "unknown step 'zz'"),
        ("step.a.id", "must be 'input.<path>'"),
    ],
)
def test_match_right_forms(right: str, rule: str) -> None:
    message = refused(base({"id": "a"}, wait_step({"left": "id", "right": right})))
    assert "field 'config.match.right'" in message and rule in message


def test_go_match_registers_a_string_waiter_from_the_run_input_or_a_step_output() -> None:
    match = {"left": "order.id", "op": "eq", "right": "step.a.output.id"}
    sim = Sim(wf({"id": "a"}, wait_step(match)))
    sim.start({"id": 5})
    waiter = of(sim.complete("a", {"id": 123}), RegisterWaiter)[0]
    assert waiter.match == {"order.id": "123"} and waiter.as_text
    sim = Sim(wf({"id": "a"}, wait_step({"left": "id", "right": "input.id"})))
    sim.start({"id": 7})
    assert of(sim.complete("a", None), RegisterWaiter)[0].match == {"id": "7"}


def test_go_match_on_nothing_fails_the_step() -> None:
    sim = Sim(wf({"id": "a"}, wait_step({"left": "id", "right": "input.missing"})))
    sim.start({})
    sim.complete("a", None)
    st = sim.step("paid")
    assert st.status == "failed" and st.error is not None
    assert "resolved to null" in st.error.message


def test_text_matching_compares_as_go_does() -> None:
    assert as_match_text(123) == "123" and as_match_text(1.0) == "1"
    assert as_match_text(True) == "true" and as_match_text({"a": 1}) is None
    assert matches({"order.id": "123"}, {"order": {"id": 123}}, as_text=True)
    assert not matches({"order.id": "123"}, {"order": {"id": 123}})
    assert not matches({"id": "1"}, {"id": None}, as_text=True)


def test_cancel_on_go_match_and_timeout_are_kept() -> None:
    rule = {"event": "stop", "match": {"left": "id", "op": "eq", "right": "input.id"}}
    defn = load_definition(base({"id": "a"}, cancel_on=[{**rule, "timeout": 5 * S}]))
    assert isinstance(defn.cancel_on[0].match, EventMatch) and defn.cancel_on[0].timeout == 5 * S
    bad = {**rule, "match": {"left": "id", "right": "step.a.output.id"}}
    assert "field 'cancel_on[0].match.right': must be 'input.<path>'" in refused(
        base({"id": "a"}, cancel_on=[bad])
    )


def test_idempotency_key_is_a_dot_path_into_the_run_input() -> None:
    assert load_definition(base({"id": "a"}, idempotency_key="order.id"))
    assert load_definition(base({"id": "a"}, idempotency_key="input.order.id"))
    assert "invalid path" in refused(base({"id": "a"}, idempotency_key="order..id"))


# --- sleep --------------------------------------------------------------------------------


def sleep_step(**config: Any) -> dict[str, Any]:
    return {"id": "z", "type": "sleep", "config": config}


def test_sleep_cron_wakes_at_the_next_match() -> None:
    sim = Sim(wf(sleep_step(cron="30 9 * * *")))
    acts = sim.start()
    assert sim.timer("sleep", acts).fire_at == T0 + timedelta(hours=9, minutes=30)
    assert "field 'config.cron': must have 5 fields" in refused(base(sleep_step(cron="* * *")))
    assert "invalid cron expression" in refused(base(sleep_step(cron="61 * * * *")))


@pytest.mark.parametrize(
    "value",
    [int((T0 + timedelta(hours=2)).timestamp() * 1000), "2030-01-01T02:00:00Z"],
)
def test_sleep_until_input_path_reads_epoch_ms_or_rfc3339(value: Any) -> None:
    sim = Sim(wf(sleep_step(until_input_path="ship.at")))
    acts = sim.start({"ship": {"at": value}})
    assert sim.timer("sleep", acts).fire_at == T0 + timedelta(hours=2)


def test_sleep_until_a_past_instant_wakes_at_once() -> None:
    sim = Sim(wf(sleep_step(until_input_path="at")))
    sim.start({"at": 0})
    assert sim.step("z").status == "completed"


def test_sleep_until_input_path_without_a_time_fails_the_step() -> None:
    sim = Sim(wf(sleep_step(until_input_path="at")))
    sim.start({"at": [1]})
    st = sim.step("z")
    assert st.status == "failed" and st.error is not None and "epoch" in st.error.message


def test_sleep_needs_exactly_one_form() -> None:
    assert "(got 2: duration, cron)" in refused(base(sleep_step(duration="1s", cron="* * * * *")))


# --- approval, respond, handler inputs ---------------------------------------------------


def test_approval_go_fields_reach_the_request() -> None:
    cfg = {
        "timeout": 3600 * S,
        "subject": "approvals.x",
        "description": "ok?",
        "metadata": {"k": 1},
    }
    sim = Sim(wf({"id": "p", "type": "approval", "config": cfg}))
    req = of(sim.start(), RequestApproval)[0]
    assert (req.subject, req.description, req.metadata) == ("approvals.x", "ok?", {"k": 1})
    assert "must be a NATS subject" in refused(
        base({"id": "p", "type": "approval", "config": {"subject": "a b"}})
    )
    assert "<= 168h" in refused(
        base({"id": "p", "type": "approval", "config": {"timeout": "169h"}})
    )


def test_respond_config_fields_load() -> None:
    cfg = {"status": 201, "headers": {"X-A": "1"}, "body_from": "result.body",
           "content_type": "text/plain"}  # fmt: skip
    defn = load_definition(base({"id": "r", "type": "respond", "config": cfg}))
    assert defn.steps[0].config is not None
    assert "field 'config.body_from'" in refused(
        base({"id": "r", "type": "respond", "config": {"body_from": "a..b"}})
    )


# --- the Go writer ------------------------------------------------------------------------


def test_go_writer_writes_what_go_always_writes() -> None:
    w = Workflow.from_json((FIXTURES / "reference" / "retry-errors.json").read_text())
    go = w.to_dict(format="go")
    for step in go["steps"]:
        assert {"id", "task", "type", "timeout", "depends_on", "config"} <= step.keys()
        assert step["timeout"] == 0
    assert go["steps"][0]["retry"]["initial_delay"] == S
    assert go["aux_steps"] == {"report-error": True}
    assert json.loads(w.to_json(format="go")) == go
    with pytest.raises(ValueError, match="format must be"):
        w.to_dict(format="yaml")  # type: ignore[arg-type]


def test_go_writer_round_trips_the_go_forms() -> None:
    defn = load_definition((FIXTURES / "go" / "signals.json").read_text())
    go = Workflow.from_definition(defn).to_dict("go")
    engine_steps = [s for s in go["steps"] if s["type"] != "normal"]
    assert all(s["task"] == "" for s in engine_steps)
    assert go["steps"][0]["retries"] == 2
    assert go["steps"][1]["config"]["match"]["op"] == "eq"
    assert load_definition(go) == defn


# --- the offline checker ------------------------------------------------------------------


def test_definition_problems_lists_each_problem() -> None:
    src = base(
        {"id": "a", "depends_on": ["zz"]},
        wait_step({"left": "x", "op": "gt", "right": "input.x"}),
        {"id": "z", "type": "sleep"},
    )
    found = [str(p) for p in definition_problems(src)]
    assert len(found) == 3
    assert any("config.match.op" in p for p in found) and any(
        "unknown step 'zz'" in p for p in found
    )
    assert definition_problems(base({"id": "a"})) == []
    assert "invalid JSON" in str(definition_problems(b"{")[0])


def test_cli_validate_exits_1_with_every_problem_and_0_when_valid(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(base(wait_step({"left": "x", "op": "gt", "right": "input.x"}))))
    result = runner.invoke(app, ["workflow", "validate", str(bad)])
    assert result.exit_code == 1
    assert "step 'paid': field 'config.match.op'" in result.output
    ok = runner.invoke(app, ["workflow", "validate", str(FIXTURES / "go" / "signals.json")])
    assert ok.exit_code == 0 and "valid" in ok.output
    out = runner.invoke(app, ["workflow", "validate", "--json", str(bad)])
    assert out.exit_code == 1 and json.loads(out.output)["valid"] is False


def test_builder_takes_the_go_forms() -> None:
    w = Workflow("b")
    a = w.step("a")
    w.sleep("c", cron="0 9 * * *", depends_on=[a])
    w.sleep("u", until_input_path="at", depends_on=[a])
    match = {"left": "id", "op": "eq", "right": "step.a.output.id"}
    w.wait_for_event("e", event="paid", match=match, depends_on=[a])
    w.approval("p", subject="approve.b", description="ok?", request_metadata={"k": 1})
    w.respond("r", headers={"X-A": "1"}, body_from="x", content_type="text/plain", depends_on=[a])
    skip = {"step_id": "a", "field": "f", "op": "==", "value": 1}
    w.step("s", depends_on=[a], skip_if=skip)
    defn = w.to_definition()
    assert isinstance(defn.step("e").config.match, EventMatch)  # type: ignore[union-attr]
    assert isinstance(defn.step("s").skip_if, SkipIf)
    assert load_definition(w.to_dict("go")) == defn == load_definition(w.to_dict())
