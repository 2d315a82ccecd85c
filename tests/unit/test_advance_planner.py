"""Methodology: drive advance() with the Sim harness through planner steps: a good fragment
joins the run (prefixed ids, normal types but agents stay agents, roots on the planner, a
planner.materialized record, the sinks and result follow), and each rule of a fragment is
broken once, asserting the run fails with that rule's message and nothing of the fragment
is applied."""

from __future__ import annotations

from typing import Any

import pytest

from dagnats.dag.definition.models import MAX_DYNAMIC_STEPS
from dagnats.dag.machine._planner import check_fragment, with_plans
from dagnats.dag.machine.actions import DispatchTask
from dagnats.dag.machine.state import RunState
from dagnats.protocol.events import PLANNER_MATERIALIZED
from tests.unit.advance_harness import Sim, dispatched, of, records, wf


def planner_wf(**config: Any) -> Sim:
    return Sim(
        wf(
            {"id": "plan", "type": "planner", "task": "make-plan", "config": config},
            {"id": "report", "depends_on": ["plan"]},
        )
    )


def test_a_fragment_joins_the_run_and_its_steps_run() -> None:
    sim = planner_wf(max_steps=5, max_depth=2, allowed_tasks=["code", "test"])
    assert dispatched(sim.start("spec")) == ["plan"]
    sim.started("plan")
    fragment = {
        "steps": [
            {"id": "code", "type": "agent", "metadata": {"role": "coder"}},
            {"id": "test", "depends_on": ["code"], "timeout": "30s"},
        ]
    }
    actions = sim.complete("plan", fragment)
    # The fragment's root depends on the planner and starts with the original dependent.
    assert dispatched(actions) == ["report", "plan.code"]
    [record] = records(actions, PLANNER_MATERIALIZED)
    assert record.data == {
        "planner": "plan",
        "steps": ["plan.code", "plan.test"],
        "dynamic_steps": 2,
    }
    assert set(sim.state.steps) == {"plan", "report", "plan.code", "plan.test"}
    full = with_plans(sim.defn, sim.state)
    code = full.step("plan.code")
    # An agent runs as a normal step and keeps its type (the engine's agent routes see it).
    assert code.type == "agent" and code.depends_on == ["plan"] and code.task_name == "code"
    assert code.metadata == {"role": "coder"}
    assert full.step("plan.test").depends_on == ["plan.code"]
    assert full.step("plan.test").type == "normal"
    sent = [d for d in of(actions, DispatchTask) if d.step_id == "plan.code"]
    assert [(d.input, d.task, d.metadata, d.agent) for d in sent] == [
        (fragment, "code", {"role": "coder"}, True)
    ]
    sim.complete("report", "r")
    sim.complete("plan.code", "patch")
    assert dispatched(sim.last) == ["plan.test"]
    sim.complete("plan.test", "green")
    assert sim.state.status == "completed"
    # The sinks are now the report and the fragment's last step.
    assert sim.state.output == {"report": "r", "plan.test": "green"}


def test_a_repeated_completion_applies_the_fragment_once() -> None:
    sim = planner_wf()
    sim.start()
    frag = {"steps": [{"id": "a", "task": "t"}]}
    sim.complete("plan", frag)
    again = sim.send(
        "step.completed", "plan", attempt=1, iteration=0, data={"output": frag}
    )  # a duplicate: stale, changes nothing
    assert again == []
    assert list(sim.state.plans) == ["plan"]


def test_an_empty_fragment_completes_the_planner() -> None:
    sim = planner_wf()
    sim.start()
    sim.complete("plan", {"steps": []})
    sim.complete("report", "done")
    assert sim.state.status == "completed"


BAD: list[tuple[str, Any, dict[str, Any], str]] = [
    ("not an object", "steps please", {}, 'must be an object {"steps": [...]}, got string'),
    ("no steps list", {"plan": []}, {}, "an object without a 'steps' list"),
    (
        "too many",
        {"steps": [{"id": f"s{i}"} for i in range(3)]},
        {"max_steps": 2},
        "has 3 steps; config.max_steps is 2",
    ),
    ("not a step", {"steps": [7]}, {}, "index 0: must be a step object, got number"),
    ("duplicate", {"steps": [{"id": "a"}, {"id": "a"}]}, {}, "step 'a': field 'id': duplicate id"),
    (
        "task not allowed",
        {"steps": [{"id": "a", "task": "rm"}]},
        {"allowed_tasks": ["code"]},
        "field 'task': 'rm' is not in config.allowed_tasks ['code']",
    ),
    (
        "dep outside",
        {"steps": [{"id": "a", "depends_on": ["report"]}]},
        {},
        "'report' is not a step of the fragment",
    ),
    (
        "cycle",
        {"steps": [{"id": "a", "depends_on": ["b"]}, {"id": "b", "depends_on": ["a"]}]},
        {},
        "the fragment has a cycle",
    ),
    (
        "too deep",
        {"steps": [{"id": "a"}, {"id": "b", "depends_on": ["a"]}]},
        {"max_depth": 0},
        "step 'b' is 1 dependencies deep; config.max_depth is 0",
    ),
    ("bad field", {"steps": [{"id": "a", "colour": "red"}]}, {}, "colour"),
    ("bad id", {"steps": [{"id": "a b"}]}, {}, "field 'id'"),
    (
        "handler",
        {"steps": [{"id": "a", "on_failure": "b"}, {"id": "b"}]},
        {},
        "field 'on_failure': not allowed in a planner's fragment",
    ),
    (
        "config",
        {"steps": [{"id": "a", "type": "map", "config": {"max_items": 2}}]},
        {},
        "field 'config': not allowed",
    ),
    (
        "control plane",
        {"steps": [{"id": "a", "required_capabilities": ["control-plane"]}]},
        {},
        "cannot grant 'control-plane'",
    ),
    ("bad option", {"steps": [{"id": "a", "skip_if": "input.x >"}]}, {}, "field 'skip_if'"),
]


@pytest.mark.parametrize(("name", "output", "config", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_fragment_fails_the_run_and_applies_nothing(
    name: str, output: Any, config: dict[str, Any], message: str
) -> None:
    sim = planner_wf(**config)
    sim.start()
    actions = sim.complete("plan", output)
    assert sim.state.status == "failed"
    assert sim.state.error is not None
    assert message in sim.state.error.message, sim.state.error.message
    assert sim.state.error.message.startswith("step 'plan' failed: planner step 'plan': ")
    step = sim.step("plan")
    assert step.status == "failed" and step.error is not None and step.error.type == "InvalidPlan"
    assert sim.state.plans == {}
    assert set(sim.state.steps) == {"plan", "report"}
    assert not records(actions, PLANNER_MATERIALIZED)
    assert dispatched(actions) == []


def test_a_clashing_id_is_refused() -> None:
    sim = Sim(
        wf(
            {"id": "plan", "type": "planner"},
            {"id": "plan2", "type": "planner", "depends_on": ["plan"]},
        )
    )
    sim.start()
    sim.complete("plan", {"steps": [{"id": "x"}]})
    defn = with_plans(sim.defn, sim.state)
    with pytest.raises(ValueError, match=r"'plan\.x' is already a step of the run"):
        check_fragment(
            defn.step("plan"),
            {"steps": [{"id": "x"}]},
            workflow="w",
            taken_ids={s.id for s in defn.steps},
            dynamic_so_far=1,
        )


def test_dynamic_steps_per_run_are_bounded() -> None:
    sim = planner_wf()
    sim.start()
    with pytest.raises(ValueError, match=f"the limit is {MAX_DYNAMIC_STEPS} per run"):
        check_fragment(
            sim.defn.step("plan"),
            {"steps": [{"id": "a"}, {"id": "b"}]},
            workflow="w",
            taken_ids=set(),
            dynamic_so_far=MAX_DYNAMIC_STEPS - 1,
        )


def test_the_full_definition_survives_the_snapshot() -> None:
    sim = planner_wf()
    sim.start()
    sim.complete(
        "plan", {"steps": [{"id": "a", "timeout": "5s"}, {"id": "b", "depends_on": ["a"]}]}
    )
    again = RunState.model_validate_json(sim.state.model_dump_json())
    assert again.plans == sim.state.plans
    full = with_plans(sim.defn, again)
    assert [s.id for s in full.steps] == ["plan", "report", "plan.a", "plan.b"]
    assert full.step("plan.a").timeout == 5_000_000_000
    # A replay from the snapshot goes on: the fragment's steps still run.
    resumed = Sim(sim.defn)
    resumed.run, resumed.seq, resumed.now = again, sim.seq, sim.now
    resumed.complete("plan.a", 1)
    assert dispatched(resumed.last) == ["plan.b"]
