"""Methodology: hypothesis properties of the loader and the Go writer.

1. Any definition dagnats accepts survives ``to_dict(format="go")`` -> ``from_dict`` (and
   ``to_dict()`` -> ``from_dict``) unchanged, also through JSON text. The generator mixes
   Go's forms and dagnats' dialect of every field (and the advance properties' workflows).
2. Arbitrary JSON, and valid definitions with one value replaced by arbitrary JSON, give
   only ``DefinitionError`` (never another exception), from the loader and the checker.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from dagnats import Workflow
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import definition_problems, load_definition
from dagnats.errors import DefinitionError
from tests.unit.test_advance_properties import workflows

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
S = 1_000_000_000

durations = st.sampled_from([0, 1_000_000, S, 30 * S, "0s", "250ms", "1h30m"])
positive = st.sampled_from([1_000_000, S, "5s", "1h"])
retry = st.fixed_dictionaries(
    {},
    optional={
        "max_attempts": st.integers(0, 100_000),
        "strategy": st.sampled_from(["fixed", "linear", "exponential"]),
        "initial_delay": durations,
        "max_delay": durations,
        "multiplier": st.floats(1.0, 100.0),
        "$schema": st.just("x"),
    },
)
json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _skip_if(draw: st.DrawFn, deps: list[str]) -> Any:
    if len(deps) > 0 and draw(st.booleans()):
        op = draw(st.sampled_from(["==", "!=", "<", ">", "<=", ">="]))
        return {
            "step_id": draw(st.sampled_from(deps)),
            "field": "f",
            "op": op,
            "value": draw(json_scalars),
        }
    return draw(st.sampled_from(["input.x == 1", "not run.input.go", None]))


def _config(draw: st.DrawFn, kind: str, deps: list[str]) -> Any:
    if kind == "sleep":
        form = draw(st.sampled_from(["duration", "until", "cron", "until_input_path"]))
        value = {
            "duration": durations,
            "until": st.just("2031-01-01T00:00:00Z"),
            "cron": st.just("*/5 * * * *"),
            "until_input_path": st.just("wake.at"),
        }[form]
        return {form: draw(value)}
    if kind == "wait_for_event":
        right = draw(st.sampled_from(["input.id"] + [f"step.{d}.output.id" for d in deps]))
        match = draw(
            st.sampled_from(
                [
                    {"left": "id", "op": "eq", "right": right},
                    {"left": "id", "right": right},
                    {"id": "input.id"},
                    {"a.b": "run.input.x"},
                    {},
                ]
            )
        )
        return {"event": "evt.x", "match": match, "timeout": draw(st.none() | positive)}
    if kind == "approval":
        return {
            "timeout": draw(positive),
            "subject": draw(st.none() | st.just("approve.me")),
            "description": draw(st.none() | st.text(max_size=5)),
            "metadata": draw(st.dictionaries(st.text(max_size=3), json_scalars, max_size=2)),
            "message": draw(st.none() | st.just("hi")),
        }
    if kind == "respond":
        return {
            "status": draw(st.integers(100, 599)),
            "headers": {"X-A": "b"},
            "body_from": draw(st.none() | st.just("a.b")),
            "content_type": "text/plain",
        }
    if kind == "agent_loop":
        return {
            "max_iterations": draw(st.integers(1, 50)),
            "loop_delay": draw(durations),
            "budget_warn_at": draw(st.none() | st.integers(1, 5)),
            "budget_force_at": draw(st.none() | st.integers(5, 50)),
        }
    if kind == "map":
        return {"max_items": draw(st.integers(1, 10_000))}
    if kind == "sub_workflow":
        workflow = draw(st.sampled_from(["other", "shop.payment.v1"]))  # Go allows dots
        return {"workflow": workflow, "detach": draw(st.booleans())}
    if kind == "planner":
        return {
            "max_steps": draw(st.integers(1, 100)),
            "max_depth": draw(st.integers(0, 10)),
            "allowed_tasks": draw(st.sampled_from([[], ["a", "b"]])),
        }
    return None


def _step(draw: st.DrawFn, i: int, earlier: list[str], prefix: str = "") -> dict[str, Any]:
    deps = sorted(set(draw(st.lists(st.sampled_from(earlier), max_size=2)))) if earlier else []
    kinds = [
        "normal",
        "agent_loop",
        "sleep",
        "wait_for_event",
        "approval",
        "respond",
        "sub_workflow",
        "agent",
        "planner",
    ] + (["map"] if len(deps) == 1 else [])
    kind = draw(st.sampled_from(kinds))
    worker = kind in ("normal", "agent_loop", "map", "agent", "planner")
    step: dict[str, Any] = {
        "id": f"{prefix}s{i}",
        "type": kind,
        "config": _config(draw, kind, deps),
        "depends_on": deps or draw(st.sampled_from([None, []])),
        "skip_if": _skip_if(draw, deps),
        "timeout": draw(durations) if worker else 0,
        # A dotted id is no task name: such a worker step names its task.
        "task": draw(st.sampled_from([f"t{i}"] if prefix else [None, f"t{i}"])) if worker else "",
    }
    if worker:
        step["retry"] = draw(st.none() | retry)
        step["retries"] = draw(st.none() | st.integers(0, 5))
        step["worker_group"] = draw(st.none() | st.just("gpu"))
        step["max_task_concurrency"] = draw(st.none() | st.integers(0, 10))
        limits = [
            None,
            {"rate_limit": {"limit": 3, "period": S}},
            {"keyed_rate_limit": {"key": "tenant", "limit": 2, "period": S, "units": 2}},
        ]
        step.update(draw(st.sampled_from(limits)) or {})
        step["required_capabilities"] = draw(st.sampled_from([None, [], ["control-plane"]]))
        step["singleton"] = draw(st.sampled_from([None, False, True]))
    step["metadata"] = draw(st.none() | st.just({"role": "x"}))
    return step


@st.composite
def definitions(draw: st.DrawFn) -> WorkflowDef:
    n = draw(st.integers(1, 6))
    prefix = draw(st.sampled_from(["", "order.", "a.b-c."]))  # Go's dotted step ids too
    steps = [_step(draw, i, [f"{prefix}s{j}" for j in range(i)], prefix) for i in range(n)]
    if draw(st.booleans()):
        steps[0]["on_failure"] = "handler"
        steps.append({"id": "handler", "task": "handler", "type": "normal"})
    top: dict[str, Any] = {
        "name": draw(st.sampled_from(["prop", "shop.order.v2"])),
        "version": draw(st.sampled_from(["", "1.0", "v2"])),
        "$schema": draw(st.none() | st.just("./schema.json")),
        "timeout": draw(durations),
        "default_retry": draw(st.none() | retry),
        "idempotency_key": draw(st.sampled_from([None, "", "order_id", "input.order.id"])),
        "output_schema": draw(st.none() | st.just({"type": "object"})),
        "concurrency": draw(
            st.sampled_from(
                [None, {"max_runs": 0}, {"max_runs": 2, "max_steps": 0}, {"max_steps": 5}]
            )
        ),
        "priority": draw(
            st.sampled_from(
                [None, {"key": "tier", "rules": {"gold": -60, "free": 60}, "default_offset": 0}]
            )
        ),
        "sticky": draw(st.sampled_from([None, "", "soft"])),
        "singleton": draw(
            st.sampled_from([None, {"mode": "skip"}, {"mode": "cancel", "key": "user.id"}])
        ),
        "cancel_on": draw(
            st.sampled_from(
                [
                    None,
                    [],
                    [{"event": "stop", "match": {"left": "id", "right": "input.id"}, "timeout": 0}],
                    [{"event": "stop", "match": {"id": "input.id"}}],
                ]
            )
        ),
        "steps": steps,
    }
    raw = {k: v for k, v in top.items() if v is not None}
    for step in steps:
        for key in [k for k, v in step.items() if v is None and k != "depends_on"]:
            del step[key]
    try:
        return load_definition(raw)
    except DefinitionError:
        reject()


def _round_trips(defn: WorkflowDef) -> None:
    w = Workflow.from_definition(defn)
    for form in ("go", "dagnats"):
        text = w.to_json(format=form)
        assert load_definition(json.loads(text)) == defn, form
        assert Workflow.from_json(text).to_definition() == defn, form


@_SETTINGS
@given(definitions())
def test_every_accepted_definition_round_trips_through_the_go_form(defn: WorkflowDef) -> None:
    _round_trips(defn)


@_SETTINGS
@given(workflows())
def test_advance_property_workflows_round_trip_too(defn: WorkflowDef) -> None:
    _round_trips(defn)


def _only_definition_errors(source: Any) -> None:
    try:
        load_definition(source)
    except DefinitionError:
        pass
    problems = definition_problems(source)
    assert all(isinstance(p, DefinitionError) for p in problems)


@_SETTINGS
@given(json_values)
def test_arbitrary_json_gives_only_definition_errors(value: Any) -> None:
    _only_definition_errors(value)
    _only_definition_errors(json.dumps(value))
    _only_definition_errors({"name": "x", "steps": value})
    _only_definition_errors({"name": "x", "steps": [value]})


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@_SETTINGS
@given(definitions(), st.data())
def test_one_value_replaced_by_arbitrary_json_gives_only_definition_errors(
    defn: WorkflowDef, data: st.DataObject
) -> None:
    doc = Workflow.from_definition(defn).to_dict("go")
    path = data.draw(st.sampled_from(_paths(doc)))
    holder: Any = doc
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = data.draw(json_values)
    _only_definition_errors(doc)
