"""Methodology: builder calls vs the JSON they make, errors at the call, hypothesis round-trips."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from dagnats.dag.definition.builder import StepRef, Workflow
from dagnats.dag.definition.models import RetryPolicy, WorkflowDef
from dagnats.errors import DefinitionError

REFERENCE = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "reference").glob("*.json"))


class ReviewIn(BaseModel):
    repo: str
    branch: str


class ReviewOut(BaseModel):
    issues: int
    report: str


class RepoOnly(BaseModel):
    repo: str
    branch: str
    extra: int = 0


@dataclass
class FakeTask:
    """Stands in for a @worker.task object: only the attributes the builder reads."""

    task_name: str
    input_type: Any = None
    output_type: Any = None


def test_api_md_example() -> None:
    wf = Workflow(
        "hello-pipeline",
        version="1.0",
        default_retry=RetryPolicy(max_attempts=2, strategy="fixed", initial_delay="5s"),
    )
    g = wf.step("greet")
    u = wf.step("uppercase", depends_on=[g], timeout="30s")
    wf.step(
        "reverse",
        depends_on=[u],
        retry=RetryPolicy(
            max_attempts=3, strategy="exponential", initial_delay="1s", max_delay="30s"
        ),
    )
    wf.agent_loop("fix", task="llm-fixer", depends_on=[u], max_iterations=10, max_duration="1h")
    wf.map("resize", task="resize-image", depends_on=[g], max_items=1000)
    wf.sleep("cool-off", duration="10m", depends_on=[u])
    wf.wait_for_event("paid", event="payment.received", match={"id": "input.id"}, timeout="24h")
    wf.sub_workflow("pay", workflow="payment-flow", depends_on=[u])
    wf.approval("sign-off", timeout="24h", depends_on=[u])
    wf.respond("answer", status=201, depends_on=["sign-off"])
    d = wf.to_dict()
    assert wf.steps == (
        "greet", "uppercase", "reverse", "fix", "resize", "cool-off", "paid", "pay",
        "sign-off", "answer",
    )  # fmt: skip
    assert d["default_retry"] == {"max_attempts": 2, "strategy": "fixed", "initial_delay": "5s"}
    # Every worker step names its task, also when it is the step id.
    assert d["steps"][0] == {"id": "greet", "task": "greet"}
    assert d["steps"][1] == {
        "id": "uppercase",
        "task": "uppercase",
        "depends_on": ["greet"],
        "timeout": "30s",
    }
    assert d["steps"][3]["config"] == {"max_iterations": 10, "max_duration": "1h"}
    assert d["steps"][4] == {
        "id": "resize",
        "task": "resize-image",
        "type": "map",
        "depends_on": ["greet"],
        "config": {"max_items": 1000},
    }
    assert d["steps"][6]["config"]["match"] == {"id": "input.id"}
    assert d["steps"][8]["config"] == {"timeout": "24h"}
    assert d["steps"][9]["config"] == {"status": 201}
    assert Workflow.from_dict(d).to_dict() == d
    assert Workflow.from_json(wf.to_json()).to_dict() == d
    assert json.loads(wf.to_json(indent=None)) == d
    defn = wf.to_definition()
    assert isinstance(defn, WorkflowDef)
    assert defn.step("fix").task_name == "llm-fixer"
    assert defn.step("greet").task_name == "greet"


def test_workflow_options() -> None:
    wf = Workflow(
        "w",
        description="d",
        timeout=timedelta(minutes=5),
        concurrency={"max_runs": 3},
        idempotency_key="input.order_id",
        input_schema=ReviewIn,
        cancel_on=[{"event": "order.cancelled", "match": {"id": "input.order_id"}}],
        priority={"key": "tier", "rules": {"gold": -60}},
        sticky="soft",
        singleton={"mode": "cancel", "key": "customer"},
        metadata={"team": "x"},
    )
    wf.step("a", rate_limit={"limit": 5, "period": "1m"}, skip_if="input.x")
    d = wf.to_dict()
    assert d["timeout"] == "5m"
    assert d["input_schema"]["required"] == ["repo", "branch"]
    assert d["priority"] == {"key": "tier", "rules": {"gold": -60}}
    assert d["sticky"] == "soft"
    assert d["singleton"] == {"mode": "cancel", "key": "customer"}
    assert d["steps"][0]["rate_limit"] == {"limit": 5, "period": "1m"}
    assert Workflow.from_dict(d).to_dict() == d
    assert wf.name == "w" and wf.version == "1.0"
    assert "Workflow('w'" in repr(wf)


def test_durations_in_any_form() -> None:
    wf = Workflow("w")
    wf.step("a", timeout=1.5)  # a number is seconds in Python
    wf.step("b", timeout=timedelta(seconds=90))
    wf.step("c", timeout="2h")
    assert [s["timeout"] for s in wf.to_dict()["steps"]] == ["1s500ms", "1m30s", "2h"]


def test_handlers_by_ref_and_id() -> None:
    wf = Workflow("w")
    undo = wf.step("undo")
    wf.step("pay", compensate=undo, on_failure="rescue")
    wf.step("rescue")
    d = wf.to_dict()
    assert d["steps"][1] == {
        "id": "pay",
        "task": "pay",
        "on_failure": "rescue",
        "compensate": "undo",
    }


def test_decorated_task_sets_id_and_checks_edges() -> None:
    wf = Workflow("w")
    review = FakeTask("review", ReviewIn, ReviewOut)
    fetch = FakeTask("fetch", None, ReviewIn)
    f = wf.step(fetch)
    assert f == StepRef("fetch", ReviewIn)
    r = wf.step(review, depends_on=[f])
    assert r.id == "review" and r.output_type is ReviewOut
    assert wf.to_dict()["steps"][1] == {"id": "review", "task": "review", "depends_on": ["fetch"]}
    wf.step("custom", task=FakeTask("other", RepoOnly), depends_on=["fetch"])
    assert wf.to_definition().step("custom").task_name == "other"


@pytest.mark.parametrize(
    ("out_t", "in_t", "ok"),
    [
        (int, ReviewIn, False),
        (str, int, True),  # "3" validates into int in lax mode: unsure -> allowed
        (int, str, False),
        (dict, ReviewIn, True),
        (ReviewOut, dict, True),
        (list, dict, False),
        (ReviewOut, ReviewIn, False),  # ReviewIn.repo is required and ReviewOut has no repo
        (ReviewIn, RepoOnly, True),
        (RepoOnly, ReviewIn, True),
        (list[int], str, True),  # generic: unsure -> allowed
        (bool, int, True),
        (None, str, True),
    ],
)
def test_edge_type_check(out_t: Any, in_t: Any, ok: bool) -> None:
    wf = Workflow("w")
    a = wf.step(FakeTask("a", None, out_t))
    if ok:
        wf.step(FakeTask("b", in_t), depends_on=[a])
        return
    with pytest.raises(DefinitionError) as info:
        wf.step(FakeTask("b", in_t), depends_on=[a])
    msg = str(info.value)
    assert "step 'b'" in msg and "'a'" in msg
    assert in_t.__name__ in msg and out_t.__name__ in msg


def test_edge_type_with_several_dependencies_is_a_dict() -> None:
    wf = Workflow("w")
    a, b = wf.step("a"), wf.step("b")
    with pytest.raises(DefinitionError, match=r"input type str .*output type dict"):
        wf.step(FakeTask("c", str), depends_on=[a, b])
    wf.step(FakeTask("d", dict), depends_on=[a, b])


def test_errors_raise_at_the_call() -> None:
    wf = Workflow("w")
    wf.step("a")
    with pytest.raises(DefinitionError, match="duplicate step id 'a'"):
        wf.step("a")
    with pytest.raises(DefinitionError, match="step 'b': field 'depends_on': unknown step 'zz'"):
        wf.step("b", depends_on=["zz"])
    with pytest.raises(DefinitionError, match=r"step 'b' \(index 1\): field 'timeout'"):
        wf.step("b", timeout="soon")
    with pytest.raises(DefinitionError, match=r"'config\.max_items': must be <= 10000"):
        wf.map("m", depends_on=["a"], max_items=20_000)
    with pytest.raises(
        DefinitionError, match="exactly one of 'duration', 'until', 'cron' or 'until_input_path'"
    ):
        wf.sleep("z")
    with pytest.raises(DefinitionError, match=r"'config\.timeout'.*168h"):
        wf.approval("p", timeout="169h")
    with pytest.raises(DefinitionError, match="'worker_group'"):
        wf.sub_workflow("c", workflow="x", worker_group="gpu")
    with pytest.raises(DefinitionError, match="'skip_if'"):
        wf.step("b", skip_if="input.x ==")
    with pytest.raises(DefinitionError, match="StepRef or a step id"):
        wf.step("b", depends_on=[3])  # type: ignore[list-item]
    with pytest.raises(DefinitionError, match="decorated task"):
        wf.step(object())
    # A rejected call leaves nothing behind.
    assert wf.steps == ("a",)


def test_graph_errors_at_to_definition() -> None:
    wf = Workflow("w")
    wf.step("a", on_failure="missing")
    with pytest.raises(DefinitionError, match="'on_failure': unknown step 'missing'"):
        wf.to_dict()
    with pytest.raises(DefinitionError, match="at least one step"):
        Workflow("empty").to_definition()


def test_bad_workflow_options() -> None:
    with pytest.raises(DefinitionError, match="workflow 'bad name': field 'name'"):
        Workflow("bad name")
    far = Workflow("w", priority={"key": "k", "rules": {"x": 601}})
    far.step("a")
    with pytest.raises(DefinitionError, match=r"'priority\.rules': offset of 'x' must be between"):
        far.to_definition()
    with pytest.raises(DefinitionError, match="'timeout'"):
        Workflow("w", timeout="forever")


@pytest.mark.parametrize("path", REFERENCE, ids=lambda p: p.name)
def test_reference_files_round_trip(path: Path) -> None:
    raw = json.loads(path.read_text())
    wf = Workflow.from_dict(raw)
    d = wf.to_dict()
    assert d["$schema"] == raw["$schema"]
    assert [s["id"] for s in d["steps"]] == [s["id"] for s in raw["steps"]]
    assert Workflow.from_dict(d).to_dict() == d
    assert Workflow.from_json(path.read_bytes()).to_dict() == d


def test_from_dict_rejects_invalid() -> None:
    with pytest.raises(DefinitionError, match="invalid JSON"):
        Workflow.from_json("{")


_ids = st.lists(
    st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), min_size=1, max_size=12, unique=True
)
_opts = st.fixed_dictionaries(
    {},
    optional={
        # Python's meaning: numbers are seconds (ints and floats), as are timedeltas.
        "timeout": st.integers(1, 10**6)
        | st.floats(0.001, 1e6)
        | st.timedeltas(timedelta(microseconds=1), timedelta(days=30))
        | st.sampled_from(["1s", "1h30m", "250ms"]),
        "retry": st.builds(
            RetryPolicy,
            max_attempts=st.integers(0, 100),
            strategy=st.sampled_from(["fixed", "linear", "exponential"]),
            initial_delay=st.integers(0, 10**5) | st.floats(0, 1e5),
        ),
        "skip_if": st.sampled_from(["input.x == 1", "not input.ok", "'a' in input.tags"]),
        "metadata": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
    },
)


@given(_ids, st.data())
def test_round_trip_linear(ids: list[str], data: st.DataObject) -> None:
    wf = Workflow("linear")
    prev: StepRef | None = None
    for step_id in ids:
        opts: dict[str, Any] = data.draw(_opts)
        prev = wf.step(step_id, depends_on=[prev] if prev else (), **opts)
    d = wf.to_dict()
    assert Workflow.from_dict(d).to_dict() == d
    assert Workflow.from_json(wf.to_json()).to_dict() == d


@given(_ids.filter(lambda x: len(x) >= 3), st.data())
def test_round_trip_diamonds(ids: list[str], data: st.DataObject) -> None:
    # Each new step depends on a random non-empty subset of the earlier ones: diamonds and
    # wider joins, always acyclic because dependencies point backwards.
    wf = Workflow("diamond")
    refs = [wf.step(ids[0])]
    for step_id in ids[1:]:
        deps = data.draw(st.lists(st.sampled_from(refs), min_size=1, max_size=3, unique=True))
        opts: dict[str, Any] = data.draw(_opts)
        refs.append(wf.step(step_id, depends_on=deps, **opts))
    d = wf.to_dict()
    back = Workflow.from_dict(d)
    assert back.to_dict() == d
    assert back.steps == tuple(ids)


def test_waiting_steps_take_handlers_skip_if_and_metadata() -> None:
    # A rejected or expired approval, a failed sleep 'until' or wait is a step failure:
    # on_failure / compensate must be expressible from Python, not only in JSON.
    wf = Workflow("waits")
    start = wf.step("start", compensate="undo")
    ap = wf.approval("ok", depends_on=[start], on_failure="escalate", metadata={"team": "ops"})
    wf.sleep("nap", duration="1s", depends_on=[ap], skip_if="input.fast")
    wf.wait_for_event("paid", event="paid", depends_on=["nap"], compensate="undo-paid")
    wf.step("escalate")
    wf.step("undo")
    wf.step("undo-paid")
    steps = {s["id"]: s for s in wf.to_dict()["steps"]}
    assert steps["ok"]["on_failure"] == "escalate"
    assert steps["ok"]["metadata"] == {"team": "ops"}
    assert steps["nap"]["skip_if"] == "input.fast"
    assert steps["paid"]["compensate"] == "undo-paid"
    assert Workflow.from_dict(wf.to_dict()).to_dict() == wf.to_dict()


def test_waiting_steps_reject_worker_and_retry_options() -> None:
    wf = Workflow("waits")
    with pytest.raises(TypeError, match="retry"):
        wf.sleep("nap", duration="1s", retry={"max_attempts": 1})  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="worker_group"):
        wf.approval("ok", worker_group="gpu")  # type: ignore[call-arg]
