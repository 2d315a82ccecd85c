"""Dotted workflow names and step ids (Go's ``order.v2``) and their one wire spelling.

``protocol.names.name_token`` is the only place a name meets NATS: it must be reversible,
never map two names to one token, never leave a ``.`` (a subject separator) in the token,
and leave every undotted name as it was (keys written before dots were allowed stay valid).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagnats.cli.logs import _of_step
from dagnats.dag.definition.conditions import lookup
from dagnats.dag.definition.formrules import step_ref
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine.actions import RegisterWaiter
from dagnats.errors import DefinitionError
from dagnats.protocol import dedup, keys, names
from dagnats.protocol.limits import LimitError, check_workflow_name
from tests.unit.advance_harness import Sim, of, wf

_PART = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
    min_size=1,
    max_size=12,
)
DOTTED = st.lists(_PART, min_size=1, max_size=6).map(".".join)
TOKEN_RE = re.compile(r"^[A-Za-z0-9_=-]+$")  # one subject token, one KV key token


@given(DOTTED)
def test_the_token_is_one_subject_token_and_reverses(name: str) -> None:
    token = names.name_token(name)
    assert TOKEN_RE.fullmatch(token)
    assert "." not in token
    assert names.name_from_token(token) == name


@given(DOTTED, DOTTED)
def test_two_names_never_share_a_token(a: str, b: str) -> None:
    assert (names.name_token(a) == names.name_token(b)) == (a == b)


@given(_PART)
def test_an_undotted_name_is_its_own_token(name: str) -> None:
    # Keys and subjects written before dots were allowed keep their exact bytes.
    assert names.name_token(name) == name


@given(DOTTED, st.integers(0, 99), st.integers(0, 99), st.integers(0, 99))
def test_step_keys_of_a_dotted_step_never_read_as_another_steps(
    step: str, attempt: int, iteration: int, item: int
) -> None:
    # With raw dots, step "a.1" and item 1 of step "a" had the same checkpoint key.
    key = keys.checkpoint_key("r1", step, item)
    assert key.split(".")[1] == names.name_token(step)
    assert key != keys.checkpoint_key("r1", f"{step}.{item}")
    assert keys.attempt_key("r1", step, attempt, iteration, None).count(".") == 3
    assert dedup.task_id("r1", step, attempt, iteration, None).count(".") == 3


def test_every_key_and_subject_of_a_step_spells_its_id_as_a_token() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert keys.attempt_key("r", "pay.card", 1, 0, None) == "r.pay=card.1.0"
    assert keys.checkpoint_key("r", "pay.card") == "r.pay=card"
    assert keys.log_key("r", "pay.card", 2) == "r.pay=card.2"
    assert keys.idempotency_key("r", "pay.card", None, None) == "r.pay=card"
    assert keys.payload_key("r", "pay.card", 1, 0, None, "input") == "r/pay=card/1.0/input"
    assert keys.waiter_key("ev", "r", "pay.card").endswith(".r.pay=card")
    assert keys.approval_ref_key("r", "pay.card", when).startswith("step.r.pay=card.")
    assert names.dead_letter_subject("r", "pay.card") == "dead.r.pay=card"
    assert names.stream_subject("r", "pay.card") == "stream.r.pay=card"
    assert names.stream_step_of("stream.r.pay=card", "r") == "pay.card"
    assert dedup.dead_letter_id("r", "pay.card", None, 3) == "dead.r.pay=card.None.3"


def test_every_key_of_a_workflow_spells_its_name_as_a_token() -> None:
    assert keys.definition_key("order.v2") == "order=v2"
    assert keys.workflow_of_definition_key("order=v2") == "order.v2"
    assert keys.run_queue_key("order.v2") == "run.order=v2"
    assert keys.singleton_key("order.v2", "all") == "singleton.order=v2.all"
    assert keys.start_idempotency_key("order.v2", 7).startswith("order=v2.")


def test_child_run_ids_of_dotted_steps_stay_run_ids_and_apart() -> None:
    dotted = keys.child_run_id("r", "pay.card", 1)
    undotted = keys.child_run_id("r", "pay_card", 1)
    assert re.fullmatch(names.NAME_PATTERN, dotted)
    assert dotted != undotted
    assert undotted == "r-pay_card-1"  # the shape it always had


@pytest.mark.parametrize("bad", ["", ".a", "a.", "a..b", "a b", "a=b", "a*", "x" * 129])
def test_a_workflow_name_outside_the_alphabet_is_refused_naming_the_rule(bad: str) -> None:
    with pytest.raises(LimitError, match="invalid workflow name"):
        check_workflow_name(bad)


def test_a_go_file_with_dotted_names_loads_with_its_names_unchanged() -> None:
    defn = load_definition(
        {
            "name": "order.v2",
            "steps": [
                {"id": "charge.card", "task": "charge", "timeout": 0},
                {"id": "ship.it", "task": "ship", "depends_on": ["charge.card"]},
                {
                    "id": "pay.sub",
                    "task": "",
                    "type": "sub_workflow",
                    "depends_on": ["ship.it"],
                    "config": {"workflow": "payment.v1"},
                },
            ],
        }
    )
    assert defn.name == "order.v2"
    assert [s.id for s in defn.steps] == ["charge.card", "ship.it", "pay.sub"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"name": "o", "steps": [{"id": "a.b"}]},
            "step 'a.b': field 'task': required when the step id contains '.'",
        ),
        (
            {"name": "o..x", "steps": [{"id": "a"}]},
            "field 'name': must be letters, digits, '_' and '-', in parts joined by single dots",
        ),
        (
            {
                "name": "o",
                "steps": [
                    {"id": "plan", "task": "p", "type": "planner", "config": {"max_steps": 2}},
                    {"id": "plan.x", "task": "x"},
                ],
            },
            "step 'plan.x': field 'id': ids starting with 'plan.' belong to the steps",
        ),
        (
            {
                "name": "o",
                "steps": [
                    {"id": "items"},
                    {"id": "each", "type": "map", "depends_on": ["items"]},
                    {"id": "each.0", "task": "x"},
                ],
            },
            "step 'each.0': field 'id': reads as item 0 of map step 'each'",
        ),
        (
            {"name": "o", "steps": [{"id": "a"}], "cancel_on": [{"event": "e"}] * 6},
            "field 'cancel_on': has 6 entries; the limit is 5 (MAX_CANCEL_ON",
        ),
    ],
)
def test_bad_dotted_forms_name_the_step_field_and_rule(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        load_definition(raw)
    assert message in str(info.value)


def _dotted_wait(right: str) -> WorkflowDef:
    return wf(
        {"id": "order.quote", "task": "quote"},
        {
            "id": "payment.paid",
            "type": "wait_for_event",
            "depends_on": ["order.quote"],
            "config": {"event": "paid", "match": {"left": "id", "op": "eq", "right": right}},
        },
    )


def test_a_go_match_can_name_a_dotted_step() -> None:
    # Go splits "step.<id>.output.<path>" at the second dot and so cannot; dagnats can.
    sim = Sim(_dotted_wait("step.order.quote.output.id"))
    sim.start(None)
    waiter = of(sim.complete("order.quote", {"id": 42}), RegisterWaiter)[0]
    assert waiter.match == {"id": "42"} and waiter.step_id == "payment.paid"


def test_a_go_match_naming_an_unknown_dotted_step_names_it() -> None:
    raw = _dotted_wait("step.order.quote.output.id").model_dump(mode="json")
    raw["steps"][1]["config"]["match"]["right"] = "step.order.other.output.id"
    with pytest.raises(DefinitionError, match=r"unknown step 'order\.other'"):
        load_definition(raw)


def test_step_refs_prefer_the_longest_id() -> None:
    assert step_ref("step.a.output.output.x", ["a", "a.output"]) == ("a.output", "x")
    assert step_ref("step.a.output.x", ["a", "a.output"]) == ("a", "x")
    assert step_ref("step.a.output.", ["a"]) is None


def test_a_skip_if_expression_reads_a_dotted_steps_output() -> None:
    sim = Sim(
        wf(
            {"id": "order.quote", "task": "quote"},
            {
                "id": "order.discount",
                "task": "discount",
                "depends_on": ["order.quote"],
                "skip_if": "steps.order.quote.output.total < 100",
            },
        )
    )
    sim.start(None)
    sim.complete("order.quote", {"total": 20})
    assert sim.step("order.discount").status == "skipped"
    scope = {"steps": {"a": {"output": {"b": 1}}, "a.b": {"output": {"c": 2}}}}
    assert lookup("steps.a.b.output.c", scope) == 2  # the longest step id wins
    assert lookup("steps.a.output.b", scope) == 1
    assert lookup("steps.zz.output", scope) is None


def test_the_cli_log_filter_tells_a_dotted_step_from_a_map_item() -> None:
    assert _of_step("each.2", "each") and _of_step("each", "each")
    assert not _of_step("each.more", "each")  # another step, dotted
    assert _of_step("pay.card", "pay.card") and not _of_step("pay.card", "pay")
