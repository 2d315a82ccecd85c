"""Methodology: one bad input per rule, asserting DefinitionError names step/field/rule; fuzz."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagnats.dag.definition.graph import (
    dependents,
    handler_steps,
    root_steps,
    sink_steps,
    step_config,
    topological_order,
)
from dagnats.dag.definition.models import MapConfig, StepDef, WorkflowDef
from dagnats.dag.definition.rules import load_definition, validate_definition
from dagnats.errors import DefinitionError

REFERENCE = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "reference").glob("*.json"))


def wf(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "w", "steps": list(steps), **top}


def s(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, **fields}


def reject(source: Any) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        load_definition(source)
    return info.value


@pytest.mark.parametrize("path", REFERENCE, ids=lambda p: p.name)
def test_reference_files_load_unchanged(path: Path) -> None:
    text = path.read_text()
    defn = load_definition(text)
    assert defn.name == json.loads(text)["name"]
    assert load_definition(path.read_bytes()) == defn
    assert load_definition(json.loads(text)) == defn
    assert defn.schema_ == "../../docs/workflow-schema.json"


def test_reference_retry_errors_shape() -> None:
    defn = load_definition(
        (
            (Path(__file__).resolve().parents[1] / "fixtures" / "reference") / "retry-errors.json"
        ).read_text()
    )
    fetch = defn.step("fetch")
    assert fetch.retry is not None
    assert fetch.retry.initial_delay == 1_000_000_000
    assert handler_steps(defn) == frozenset({"report-error"})
    assert root_steps(defn) == ("fetch",)
    assert sink_steps(defn) == ("process",)


# (definition, substrings the message must contain, step_id, field)
CASES: list[tuple[str, Any, list[str], str | None, str | None]] = [
    ("no steps", wf(), ["workflow 'w'", "'steps'", "at least one step"], None, "steps"),
    ("steps missing", {"name": "w"}, ["workflow 'w': field 'steps': required"], None, "steps"),
    (
        "too many steps",
        wf(*[s(f"s{i}") for i in range(1001)]),
        ["1001 steps", "limit is 1000", "MAX_STEPS"],
        None,
        "steps",
    ),
    ("duplicate id", wf(s("a"), s("b"), s("a")), ["duplicate step id 'a'", "0 and 2"], "a", "id"),
    (
        "unknown dep",
        wf(s("a", depends_on=["zz"])),
        ["step 'a'", "depends_on", "'zz'"],
        "a",
        "depends_on",
    ),
    ("self dep", wf(s("a", depends_on=["a"])), ["step 'a'", "depend on itself"], "a", "depends_on"),
    (
        "duplicate dep",
        wf(s("a"), s("b", depends_on=["a", "a"])),
        ["step 'b'", "'a' is listed more than once"],
        "b",
        "depends_on",
    ),
    (
        "cycle",
        wf(s("a", depends_on=["c"]), s("b", depends_on=["a"]), s("c", depends_on=["b"]), s("r")),
        ["cycle: a -> b -> c -> a"],
        "a",
        "depends_on",
    ),
    (
        "unknown field",
        wf(s("x", colour="red")),
        ["step 'x': unknown field 'colour'"],
        "x",
        "colour",
    ),
    (
        "unknown top field",
        wf(s("x"), colour=1),
        ["workflow 'w': unknown field 'colour'"],
        None,
        "colour",
    ),
    (
        "map max_items",
        wf(s("a"), s("resize", type="map", depends_on=["a"], config={"max_items": 20000})),
        ["step 'resize' (index 1): field 'config.max_items': must be <= 10000 (got 20000)"],
        "resize",
        "config.max_items",
    ),
    (
        "map zero items",
        wf(s("a"), s("m", type="map", depends_on=["a"], config={"max_items": 0})),
        ["'config.max_items'", "must be >= 1"],
        "m",
        "config.max_items",
    ),
    (
        "map no dep",
        wf(s("m", type="map")),
        ["step 'm'", "exactly one dependency", "got 0"],
        "m",
        "depends_on",
    ),
    (
        "map two deps",
        wf(s("a"), s("b"), s("m", type="map", depends_on=["a", "b"])),
        ["exactly one dependency", "got 2"],
        "m",
        "depends_on",
    ),
    (
        "unknown config field",
        wf(s("a"), s("m", type="map", depends_on=["a"], config={"colour": 1})),
        ["step 'm': unknown field 'config.colour'"],
        "m",
        "config.colour",
    ),
    (
        "agent no config",
        wf(s("l", type="agent_loop")),
        ["step 'l'", "'config'", "max_iterations"],
        "l",
        "config",
    ),
    (
        "agent zero iterations",
        wf(s("l", type="agent_loop", config={"max_iterations": 0})),
        ["'config.max_iterations'", "must be > 0"],
        "l",
        "config.max_iterations",
    ),
    (
        "agent max_duration zero",
        wf(s("l", type="agent_loop", config={"max_iterations": 1, "max_duration": 0})),
        ["'config.max_duration'", "> 0"],
        "l",
        "config.max_duration",
    ),
    ("normal config", wf(s("n", config={"x": 1})), ["step 'n'", "takes no config"], "n", "config"),
    ("bad type", wf(s("n", type="foo")), ["field 'type'", "must be one of", "'foo'"], "n", "type"),
    (
        "sleep no config",
        wf(s("z", type="sleep")),
        ["step 'z'", "set one of config.duration, config.until, config.cron"],
        "z",
        "config",
    ),
    (
        "sleep both",
        wf(s("z", type="sleep", config={"duration": "1s", "until": "input.at"})),
        ["exactly one of 'duration', 'until', 'cron' or 'until_input_path'", "got 2"],
        "z",
        "config",
    ),
    (
        "sleep too long",
        wf(s("z", type="sleep", config={"duration": "8761h"})),
        ["'config.duration'", "365 days", "8761h"],
        "z",
        "config.duration",
    ),
    (
        "sleep bad duration",
        wf(s("z", type="sleep", config={"duration": "soon"})),
        ["'config.duration'", "invalid duration 'soon'"],
        "z",
        "config.duration",
    ),
    (
        "sleep until date only",
        wf(s("z", type="sleep", config={"until": "2030-01-01"})),
        ["'config.until'", "RFC 3339"],
        "z",
        "config.until",
    ),
    (
        "sleep until no zone",
        wf(s("z", type="sleep", config={"until": "2030-01-01T00:00:00"})),
        ["RFC 3339"],
        "z",
        "config.until",
    ),
    (
        "sleep until bad path",
        wf(s("z", type="sleep", config={"until": "order.at"})),
        ["'config.until'", "must start with 'input' or 'run.input'"],
        "z",
        "config.until",
    ),
    (
        "sleep until bad syntax",
        wf(s("z", type="sleep", config={"until": "input..at"})),
        ["'config.until'", "invalid path"],
        "z",
        "config.until",
    ),
    (
        "approval too long",
        wf(s("p", type="approval", config={"timeout": "169h"})),
        ["'config.timeout'", "<= 168h", "169h"],
        "p",
        "config.timeout",
    ),
    (
        "approval zero",
        wf(s("p", type="approval", config={"timeout": 0})),
        ["'config.timeout'", "> 0"],
        "p",
        "config.timeout",
    ),
    (
        "wait no config",
        wf(s("e", type="wait_for_event")),
        ["step 'e'", "config.event"],
        "e",
        "config",
    ),
    (
        "wait no event",
        wf(s("e", type="wait_for_event", config={})),
        ["'config.event': required"],
        "e",
        "config.event",
    ),
    (
        "wait bad match",
        wf(s("e", type="wait_for_event", config={"event": "paid", "match": {"id": "order.id"}})),
        ["'config.match'", "'order.id'", "must start with"],
        "e",
        "config.match",
    ),
    (
        "wait bad match key",
        wf(s("e", type="wait_for_event", config={"event": "paid", "match": {"a..b": "input.id"}})),
        ["'config.match'", "event field 'a..b'"],
        "e",
        "config.match",
    ),
    (
        "wait zero timeout",
        wf(s("e", type="wait_for_event", config={"event": "paid", "timeout": 0})),
        ["'config.timeout'", "> 0"],
        "e",
        "config.timeout",
    ),
    (
        "sub no config",
        wf(s("c", type="sub_workflow")),
        ["step 'c'", "config.workflow"],
        "c",
        "config",
    ),
    (
        "sub itself",
        wf(s("c", type="sub_workflow", config={"workflow": "w"})),
        ["cannot start itself"],
        "c",
        "config.workflow",
    ),
    (
        "retry on sleep",
        wf(s("z", type="sleep", config={"duration": "1s"}, retry={"max_attempts": 1})),
        ["step 'z'", "'retry'", "never retried"],
        "z",
        "retry",
    ),
    (
        "retry on approval",
        wf(s("p", type="approval", retry={"max_attempts": 1})),
        ["never retried"],
        "p",
        "retry",
    ),
    (
        "worker_group on sub_workflow",
        wf(s("c", type="sub_workflow", config={"workflow": "x"}, worker_group="gpu")),
        ["'worker_group'", "only worker steps", "'sub_workflow'"],
        "c",
        "worker_group",
    ),
    (
        "task on sleep",
        wf(s("z", type="sleep", task="t", config={"duration": "1s"})),
        ["'task'", "only worker steps"],
        "z",
        "task",
    ),
    (
        "timeout on approval",
        wf(s("p", type="approval", timeout="1h")),
        ["'timeout'", "config.timeout"],
        "p",
        "timeout",
    ),
    (
        "timeout on respond",
        wf(s("r", type="respond", timeout="1h")),
        ["'timeout'", "remove it"],
        "r",
        "timeout",
    ),
    (
        "negative step timeout",
        wf(s("a", timeout=-1)),
        ["step 'a'", "'timeout'", "negative"],
        "a",
        "timeout",
    ),
    (
        "bad step timeout",
        wf(s("a", timeout="1 day")),
        ["step 'a' (index 0): field 'timeout'", "invalid duration"],
        "a",
        "timeout",
    ),
    (
        "retry too many",
        wf(s("a", retry={"max_attempts": 100_001})),
        ["'retry.max_attempts'", "<= 100000"],
        "a",
        "retry.max_attempts",
    ),
    (
        "bad strategy",
        wf(s("a", retry={"strategy": "random"})),
        ["'retry.strategy'", "'fixed', 'linear' or 'exponential'"],
        "a",
        "retry.strategy",
    ),
    (
        "bad skip_if",
        wf(s("a", skip_if="input.x ==")),
        ["step 'a'", "'skip_if'", "position"],
        "a",
        "skip_if",
    ),
    (
        "skip_if too long",
        wf(s("a", skip_if="x" * 1025)),
        ["'skip_if'", "at most 1024 characters"],
        "a",
        "skip_if",
    ),
    (
        "handler missing",
        wf(s("a", on_failure="h")),
        ["step 'a'", "'on_failure'", "unknown step 'h'"],
        "a",
        "on_failure",
    ),
    (
        "handler self",
        wf(s("a", compensate="a")),
        ["'compensate'", "its own handler"],
        "a",
        "compensate",
    ),
    (
        "handler has deps",
        wf(s("a"), s("b", on_failure="h"), s("h", depends_on=["a"])),
        ["step 'b'", "handler step 'h'", "no dependencies"],
        "b",
        "on_failure",
    ),
    (
        "handler depended on",
        wf(s("a", on_failure="h"), s("h"), s("c", depends_on=["h"])),
        ["handler step 'h'", "not be a dependency"],
        "a",
        "on_failure",
    ),
    (
        "handler not normal",
        wf(s("a", compensate="h"), s("h", type="sleep", config={"duration": "1s"})),
        ["handler step 'h'", "'normal'", "'sleep'"],
        "a",
        "compensate",
    ),
    (
        "handler chains",
        wf(s("a", on_failure="h"), s("h", on_failure="g"), s("g")),
        ["handler step 'h'", "do not chain"],
        "a",
        "on_failure",
    ),
    ("bad id", wf(s("a b")), ["field 'id'", "letters, digits", "'a b'"], "a b", "id"),
    ("id missing", wf({"task": "t"}), ["step at index 0", "field 'id': required"], None, "id"),
    ("step not object", wf(3), ["step at index 0", "expected an object"], None, None),  # type: ignore[arg-type]
    (
        "bad name",
        {"name": "", "steps": [s("a")]},
        ["field 'name'", "must not be empty"],
        None,
        "name",
    ),
    (
        "negative workflow timeout",
        wf(s("a"), timeout=-5),
        ["workflow 'w'", "'timeout'", "negative"],
        None,
        "timeout",
    ),
    (
        "idempotency key type",
        wf(s("a"), idempotency_key=5),
        ["'idempotency_key'", "expected a string"],
        None,
        "idempotency_key",
    ),
    (
        "idempotency key syntax",
        wf(s("a"), idempotency_key="input."),
        ["'idempotency_key'", "invalid path"],
        None,
        "idempotency_key",
    ),
    (
        "input_schema pattern not linear-time",
        wf(s("a"), input_schema={"type": "string", "pattern": "(a)\\1"}),
        ["'input_schema'", "linear-time engine", "(a)"],
        None,
        "input_schema",
    ),
    (
        "priority offset",
        wf(s("a"), priority={"key": "tier", "rules": {"gold": -601}}),
        ["'priority.rules'", "offset of 'gold'", "-600 and 600", "got -601"],
        None,
        "priority.rules",
    ),
    (
        "concurrency",
        wf(s("a"), concurrency={"max_runs": -1}),
        ["'concurrency.max_runs'", ">= 1"],
        None,
        "concurrency.max_runs",
    ),
    (
        "cancel_on match",
        wf(s("a"), cancel_on=[{"event": "stop", "match": {"id": "steps.a"}}]),
        ["'cancel_on[0].match'", "must start with 'input'"],
        None,
        "cancel_on[0].match",
    ),
    (
        "deps not list",
        wf(s("a", depends_on="b")),
        ["'depends_on'", "expected an array, got string"],
        "a",
        "depends_on",
    ),
]


@pytest.mark.parametrize(
    ("source", "needles", "step_id", "field"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_rule(source: Any, needles: list[str], step_id: str | None, field: str | None) -> None:
    err = reject(source)
    for needle in needles:
        assert needle in str(err), str(err)
    assert err.step_id == step_id
    assert err.field == field


def test_pydantic_errors_are_chained_not_shown() -> None:
    err = reject(wf(s("a", timeout="x")))
    assert "pydantic" not in str(err)
    assert "Value error" not in str(err)
    assert err.__cause__ is not None


def test_several_pydantic_problems_in_one_message() -> None:
    err = reject(wf(s("a", timeout="x"), s("b", colour=1)))
    assert "step 'a'" in str(err) and "unknown field 'colour'" in str(err)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{\n  "name": "w",\n    "steps": [,]\n}', "invalid JSON at line 3 column 15"),
        ("", "invalid JSON at line 1 column 1"),
        (b"\xff\xfe", "not UTF-8"),
        ("[1, 2]", "must be a JSON object, got list"),
        ("[" * 100_000, "invalid JSON"),
    ],
)
def test_malformed_json(text: str | bytes, needle: str) -> None:
    assert needle in str(reject(text))


def test_not_a_mapping() -> None:
    assert "got int" in str(reject(42))


VALID: list[dict[str, Any]] = [
    wf(s("a"), s("m", type="map", depends_on=["a"])),
    wf(s("z", type="sleep", config={"until": "2030-01-01T09:00:00Z"})),
    wf(s("z", type="sleep", config={"until": "2030-01-01T09:00:00+02:00"})),
    wf(s("z", type="sleep", config={"until": "run.input.wake_at"})),
    wf(s("z", type="sleep", config={"duration": "8760h"})),
    wf(s("p", type="approval")),
    wf(s("p", type="approval", config={"timeout": "168h"})),
    wf(s("e", type="wait_for_event", config={"event": "paid", "match": {"order.id": "input.id"}})),
    wf(s("c", type="sub_workflow", config={"workflow": "other"}, retry={"max_attempts": 2})),
    wf(s("r", type="respond", config={"status": 201})),
    wf(s("a", skip_if="input.x == 1 and steps.a.status != 'failed'")),
    wf(s("a"), idempotency_key="input.order.id"),
    wf(s("a"), input_schema={"type": "object", "properties": {"x": {"type": "integer"}}}),
    wf(s("a", compensate="undo", on_failure="rescue"), s("undo"), s("rescue")),
    {"$schema": "x.json", "name": "w", "steps": [s("a", timeout=5_000_000_000)]},
]


@pytest.mark.parametrize("source", VALID)
def test_valid(source: dict[str, Any]) -> None:
    defn = load_definition(source)
    assert load_definition(defn) is defn


def test_task_defaults_to_id() -> None:
    defn = load_definition(wf(s("a"), s("b", task="other")))
    assert defn.step("a").task == "a"  # set when loaded: Go always writes the task
    assert defn.step("a").task_name == "a"
    assert defn.step("b").task_name == "other"


def test_step_config_defaults() -> None:
    defn = load_definition(wf(s("a"), s("m", type="map", depends_on=["a"])))
    cfg = step_config(defn.step("m"))
    assert isinstance(cfg, MapConfig) and cfg.max_items == 1000
    assert step_config(defn.step("a")) is None


def test_validate_definition_checks_models_built_in_python() -> None:
    defn = WorkflowDef(name="w", steps=[StepDef(id="a", depends_on=["b"])])
    with pytest.raises(DefinitionError, match="unknown step 'b'"):
        validate_definition(defn)


def test_graph_helpers_diamond_with_handlers() -> None:
    defn = load_definition(
        wf(
            s("d", depends_on=["b", "c"]),
            s("b", depends_on=["a"], on_failure="fix"),
            s("c", depends_on=["a"], compensate="undo"),
            s("a"),
            s("fix"),
            s("undo"),
            s("lonely"),
        )
    )
    assert handler_steps(defn) == frozenset({"fix", "undo"})
    assert root_steps(defn) == ("a", "lonely")
    assert sink_steps(defn) == ("d", "lonely")
    order = topological_order(defn)
    assert set(order) == {s.id for s in defn.steps}
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")
    assert dependents(defn)["a"] == ("b", "c")
    assert dependents(defn)["d"] == ()


def test_topological_order_keeps_definition_order_for_ties() -> None:
    defn = load_definition(wf(s("z"), s("y"), s("x", depends_on=["z"])))
    assert topological_order(defn) == ("z", "y", "x")


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    ["id", "task", "type", "depends_on", "timeout", "retry", "skip_if", "on_failure", "compensate",
     "config", "worker_group", "rate_limit", "metadata", "max_task_concurrency"]
)  # fmt: skip
_types = st.sampled_from(
    [
        "normal",
        "map",
        "sleep",
        "agent_loop",
        "approval",
        "wait_for_event",
        "sub_workflow",
        "respond",
    ]
)
_step = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c"])},
    optional={
        "type": _types,
        "depends_on": st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3),
        "config": st.dictionaries(
            st.sampled_from(["max_items", "max_iterations", "duration", "until", "event", "timeout",
                             "workflow", "match", "status"]),
            _json, max_size=3,
        ),
        "skip_if": st.text(max_size=20),
        "on_failure": st.sampled_from(["a", "b", "c", "x"]),
        "timeout": _json,
    },
)  # fmt: skip


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(
    st.one_of(
        _json,
        st.dictionaries(st.sampled_from(["name", "steps", "timeout", "input_schema"]), _json),
        st.fixed_dictionaries({"name": st.just("w"), "steps": st.lists(_step, max_size=4)}),
        st.fixed_dictionaries(
            {"name": st.just("w"), "steps": st.lists(st.dictionaries(_keys, _json), max_size=3)}
        ),
    )
)
def test_fuzz_only_definition_errors(source: Any) -> None:
    try:
        load_definition(source)
    except DefinitionError as exc:
        assert str(exc)


@given(st.text(max_size=40) | st.binary(max_size=40))
def test_fuzz_text_only_definition_errors(source: str | bytes) -> None:
    try:
        load_definition(source)
    except DefinitionError:
        pass
