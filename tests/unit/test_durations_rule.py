"""Methodology: the one duration rule, checked at each door a duration comes in by.

In Python a number is seconds (builder, model constructors, worker options, RetryAfter); in
JSON data an integer is nanoseconds (load_definition, model_validate of dicts and text).
Each case states the same duration both ways and asserts the same nanoseconds come out.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import dagnats
from dagnats import RetryAfter, RetryPolicy, Worker, Workflow
from dagnats.dag.definition.models import RateLimit, SleepConfig, StepDef, WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.protocol.durations import MS, SECOND, DurationError, to_ns

HOUR_NS = 3600 * SECOND


def _steps(wf: Workflow) -> dict[str, StepDef]:
    return {s.id: s for s in wf.to_definition().steps}


def test_builder_numbers_are_seconds() -> None:
    wf = Workflow("w", timeout=3600, default_retry={"initial_delay": 2})
    wf.step("a", timeout=30, retry={"max_attempts": 1, "initial_delay": 0.25, "max_delay": 1})
    wf.step("b", rate_limit={"limit": 5, "period": 60})
    wf.agent_loop("c", max_iterations=3, max_duration=7200, loop_delay=0.5)
    wf.sleep("d", duration=90)
    wf.wait_for_event("e", event="paid", timeout=60, lookback=1)
    wf.approval("f", timeout=600)
    defn = wf.to_definition()
    assert defn.timeout == HOUR_NS
    assert defn.default_retry is not None and defn.default_retry.initial_delay == 2 * SECOND
    s = _steps(wf)
    assert s["a"].timeout == 30 * SECOND
    assert s["a"].retry is not None
    assert (s["a"].retry.initial_delay, s["a"].retry.max_delay) == (250 * MS, SECOND)
    assert s["b"].rate_limit is not None and s["b"].rate_limit.period == 60 * SECOND
    assert s["c"].config is not None and s["c"].config.model_dump(exclude_none=True) == {
        "max_iterations": 3,
        "max_duration": "2h",
        "loop_delay": "500ms",
    }
    assert isinstance(s["d"].config, SleepConfig) and s["d"].config.duration == 90 * SECOND
    assert [st["config"].get("timeout") for st in wf.to_dict()["steps"][4:]] == ["1m", "10m"]


def test_builder_timedelta_and_strings() -> None:
    wf = Workflow("w", timeout=timedelta(hours=1))
    wf.step("a", timeout=timedelta(milliseconds=1500))
    wf.step("b", timeout="1h30m")
    assert wf.to_definition().timeout == HOUR_NS
    assert [s.timeout for s in wf.to_definition().steps] == [1500 * MS, 90 * 60 * SECOND]


@pytest.mark.parametrize(
    ("kwargs", "initial", "maximum"),
    [
        ({"initial_delay": 1, "max_delay": 30}, SECOND, 30 * SECOND),
        ({"initial_delay": 0.1, "max_delay": 2.5}, 100 * MS, 2500 * MS),
        ({"initial_delay": "1s", "max_delay": "30s"}, SECOND, 30 * SECOND),
        (
            {"initial_delay": timedelta(seconds=1), "max_delay": timedelta(minutes=1)},
            SECOND,
            60 * SECOND,
        ),
    ],
)
def test_retry_policy_constructed_in_python(
    kwargs: dict[str, Any], initial: int, maximum: int
) -> None:
    policy = RetryPolicy(max_attempts=3, strategy="exponential", **kwargs)
    assert (policy.initial_delay, policy.max_delay) == (initial, maximum)


def test_rate_limit_constructed_in_python() -> None:
    assert RateLimit(limit=1, period=2).period == 2 * SECOND


def test_worker_task_and_retry_after_numbers_are_seconds() -> None:
    worker = Worker()

    @worker.task(timeout=30)
    def a(ctx: dagnats.TaskContext) -> None: ...

    @worker.task(timeout=timedelta(minutes=2))
    def b(ctx: dagnats.TaskContext) -> None: ...

    assert (a.timeout_ns, b.timeout_ns) == (30 * SECOND, 120 * SECOND)
    assert RetryAfter(2).delay_ns == 2 * SECOND
    assert RetryAfter(0.5).delay_ns == 500 * MS
    assert RetryAfter("1m").delay_ns == 60 * SECOND


def test_json_integers_are_nanoseconds() -> None:
    data = {
        "name": "w",
        "timeout": HOUR_NS,
        "steps": [
            {
                "id": "a",
                "timeout": 30 * SECOND,
                "retry": {"max_attempts": 1, "initial_delay": SECOND},
            },
            {"id": "s", "type": "sleep", "depends_on": ["a"], "config": {"duration": 5}},
        ],
    }
    for defn in (
        load_definition(data),
        load_definition(json.dumps(data)),
        WorkflowDef.model_validate(data),
        WorkflowDef.model_validate_json(json.dumps(data)),
        Workflow.from_dict(data).to_definition(),
    ):
        assert defn.timeout == HOUR_NS
        a, s = defn.steps
        assert a.timeout == 30 * SECOND
        assert a.retry is not None and a.retry.initial_delay == SECOND
        assert isinstance(s.config, SleepConfig) and s.config.duration == 5  # five ns
    assert RetryPolicy.model_validate({"initial_delay": 7}).initial_delay == 7


def test_round_trip_keeps_the_meaning() -> None:
    wf = Workflow("w", timeout=60)
    wf.step("a", timeout=1.5, retry=RetryPolicy(initial_delay=2, max_delay=timedelta(hours=1)))
    d = wf.to_dict()
    assert d["timeout"] == "1m" and d["steps"][0]["timeout"] == "1s500ms"
    assert d["steps"][0]["retry"]["initial_delay"] == "2s"
    back = Workflow.from_dict(d)
    assert back.to_definition() == wf.to_definition()
    assert Workflow.from_json(wf.to_json()).to_dict() == d


@pytest.mark.parametrize(
    ("value", "needle"),
    [(True, "seconds, got True"), (-1, "negative"), (float("nan"), "finite"), (1e12, "too large")],
)
def test_python_numbers_rejected_clearly(value: Any, needle: str) -> None:
    with pytest.raises(DurationError, match=f"invalid timeout: .*{needle}"):
        to_ns(value, "timeout")
    with pytest.raises(dagnats.DefinitionError, match="field 'timeout'"):
        Workflow("w").step("a", timeout=value)


def test_typed_init_signatures_match_the_fields() -> None:
    # The TYPE_CHECKING __init__ of RetryPolicy and RateLimit is for type checkers only;
    # this keeps its parameters in step with the model's fields.
    import dagnats.dag.definition.models as models

    tree = ast.parse(inspect.getsource(models))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for model in (RetryPolicy, RateLimit):
        inits = [
            f
            for node in classes[model.__name__].body
            if isinstance(node, ast.If)
            for f in node.body
            if isinstance(f, ast.FunctionDef) and f.name == "__init__"
        ]
        assert len(inits) == 1, model.__name__
        assert [a.arg for a in inits[0].args.kwonlyargs] == list(model.model_fields)


def test_readme_retry_policy_type_checks_without_the_pydantic_plugin(tmp_path: Path) -> None:
    code = (
        "import dagnats\n"
        'p = dagnats.RetryPolicy(max_attempts=3, strategy="exponential", '
        'initial_delay="1s", max_delay="30s")\n'
        "d: dagnats.DurationLike = 1.5\n"
        "n: int = p.initial_delay\n"
    )
    (tmp_path / "use.py").write_text(code)
    root = Path(dagnats.__file__).parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            "/dev/null",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            str(tmp_path / "use.py"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env={**os.environ, "MYPYPATH": str(root)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
