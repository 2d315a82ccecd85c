"""Methodology: every rule of the flow-control options is broken once through
``load_definition`` (asserting the message names the step, the field and the rule), the Go
forms load, and the pure lookups (priority offset, singleton scope, keyed bucket) are
checked value by value."""

from __future__ import annotations

from typing import Any

import pytest

from dagnats.dag.definition.flow import key_digest, priority_offset_s, singleton_scope, value_at
from dagnats.dag.definition.rules import load_definition
from dagnats.errors import DefinitionError


def wf(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "w", "steps": list(steps) or [{"id": "a"}], **top}


LOOP = {"id": "a", "type": "agent_loop", "config": {"max_iterations": 5}}

BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "hard needs timeout",
        wf(sticky="hard"),
        "field 'sticky': 'hard' needs a workflow 'timeout' > 0",
    ),
    (
        "sticky and group",
        wf({"id": "a", "worker_group": "gpu"}, sticky="soft"),
        "cannot be combined with 'worker_group' (step 'a'",
    ),
    ("sticky value", wf(sticky="always"), "'sticky'"),
    (
        "priority no rules",
        wf(priority={"key": "t", "rules": {}}),
        "'priority.rules': needs 1 to 20 rules",
    ),
    (
        "priority many rules",
        wf(priority={"key": "t", "rules": {str(i): 1 for i in range(21)}}),
        "got 21",
    ),
    (
        "priority offset",
        wf(priority={"key": "t", "rules": {"x": 900}}),
        "between -600 and 600 seconds, got 900",
    ),
    (
        "priority default",
        wf(priority={"key": "t", "rules": {"x": 1}, "default_offset": -601}),
        "'priority.default_offset'",
    ),
    (
        "priority key",
        wf(priority={"key": "a..b", "rules": {"x": 1}}),
        "'priority.key': invalid path",
    ),
    ("singleton mode", wf(singleton={"mode": "queue"}), "'singleton.mode'"),
    ("singleton key", wf(singleton={"key": "a b"}), "'singleton.key': invalid path"),
    ("max_steps", wf(concurrency={"max_steps": 1001}), "'concurrency.max_steps'"),
    (
        "keyed and rate",
        wf({"id": "a", "rate_limit": {"limit": 1}, "keyed_rate_limit": {"key": "t", "limit": 1}}),
        "step 'a': field 'keyed_rate_limit': cannot be combined with 'rate_limit'",
    ),
    (
        "units over limit",
        wf({"id": "a", "keyed_rate_limit": {"key": "t", "limit": 2, "units": 3}}),
        "field 'keyed_rate_limit.units': a task takes 3 tokens but the bucket holds only 2",
    ),
    (
        "keyed key",
        wf({"id": "a", "keyed_rate_limit": {"key": "", "limit": 2}}),
        "'keyed_rate_limit.key'",
    ),
    (
        "keyed on sleep",
        wf(
            {
                "id": "a",
                "type": "sleep",
                "config": {"duration": "1s"},
                "keyed_rate_limit": {"key": "t", "limit": 1},
            }
        ),
        "only worker steps",
    ),
    (
        "capability",
        wf({"id": "a", "required_capabilities": ["root"]}),
        "field 'required_capabilities': unknown capability 'root'",
    ),
    (
        "capability on sleep",
        wf(
            {
                "id": "a",
                "type": "sleep",
                "config": {"duration": "1s"},
                "required_capabilities": ["control-plane"],
            }
        ),
        "only worker steps have a handler",
    ),
    (
        "warn over max",
        wf({**LOOP, "config": {"max_iterations": 5, "budget_warn_at": 6}}),
        "field 'config.budget_warn_at': must be <= max_iterations (5), got 6",
    ),
    (
        "force over max",
        wf({**LOOP, "config": {"max_iterations": 5, "budget_force_at": 9}}),
        "field 'config.budget_force_at': must be <= max_iterations (5)",
    ),
    (
        "warn after force",
        wf({**LOOP, "config": {"max_iterations": 5, "budget_warn_at": 4, "budget_force_at": 3}}),
        "must be <= budget_force_at (3), got 4",
    ),
    (
        "planner max_steps",
        wf({"id": "p", "type": "planner", "config": {"max_steps": 101}}),
        "'config.max_steps'",
    ),
    (
        "planner max_depth",
        wf({"id": "p", "type": "planner", "config": {"max_depth": 11}}),
        "'config.max_depth'",
    ),
    (
        "agent config",
        wf({"id": "a", "type": "agent", "config": {"max_iterations": 1}}),
        "'agent' step takes no config",
    ),
]


@pytest.mark.parametrize(("name", "source", "message"), BAD, ids=[b[0] for b in BAD])
def test_each_rule_is_named(name: str, source: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        load_definition(source)
    assert message in str(info.value)


def test_the_go_forms_load() -> None:
    defn = load_definition(
        wf(
            {
                "id": "a",
                "type": "agent",
                "singleton": True,  # Go's unused step flag: accepted and ignored
                "metadata": {"role": "coder"},
                "required_capabilities": ["control-plane"],
                "keyed_rate_limit": {"key": "tenant", "limit": 10, "period": 60_000_000_000},
            },
            {"id": "p", "type": "planner", "config": {"allowed_tasks": ["a"]}},
            {
                "id": "l",
                "type": "agent_loop",
                "config": {"max_iterations": 5, "budget_warn_at": 3, "budget_force_at": 5},
            },
            sticky="hard",
            timeout=60_000_000_000,
            priority={"key": "tier", "rules": {"gold": -60, "free": 600}, "default_offset": 10},
            singleton={"mode": "cancel", "key": "customer.id"},
            concurrency={"max_steps": 0},
        )
    )
    a = defn.step("a")
    assert a.singleton and a.keyed_rate_limit is not None and a.keyed_rate_limit.units == 1
    assert defn.sticky == "hard" and defn.singleton is not None
    assert defn.step("p").config is not None


def test_priority_offsets() -> None:
    defn = load_definition(
        wf(priority={"key": "input.tier", "rules": {"gold": -60, "3": 5}, "default_offset": 10})
    )
    assert priority_offset_s(defn, {"tier": "gold"}) == -60
    assert priority_offset_s(defn, {"tier": 3}) == 5  # values compare as strings, as in Go
    assert priority_offset_s(defn, {"tier": "tin"}) == 10
    assert priority_offset_s(defn, {}) == 10
    assert priority_offset_s(defn, "not an object") == 10
    assert priority_offset_s(load_definition(wf()), {"tier": "gold"}) == 0


def test_singleton_scopes() -> None:
    keyed = load_definition(wf(singleton={"mode": "skip", "key": "customer.id"}))
    assert singleton_scope(keyed, {"customer": {"id": 7}}) == key_digest(7)
    assert singleton_scope(keyed, {"customer": {"id": 7}}) != singleton_scope(keyed, {})
    assert singleton_scope(load_definition(wf(singleton={})), {"x": 1}) == "all"
    assert singleton_scope(load_definition(wf()), {"x": 1}) is None


def test_paths_with_or_without_input() -> None:
    doc = {"tenant": "acme", "input": {"tenant": "nested"}, "list": [1, 2]}
    assert value_at("tenant", doc) == "acme"
    assert value_at("input.tenant", doc) == "acme"
    assert value_at("list.1", doc) == 2
    assert value_at("missing.x", doc) is None
    assert key_digest("7") == key_digest("7") and len(key_digest(None)) == 32
