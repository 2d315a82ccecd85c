"""Methodology: the planner pipeline's JSON file loads as written and runs end to end on a
real nats-server (``dagnats_env``): the planner's fragment joins the run (its steps are
recorded in ``planner.materialized``, prefixed and routed by role through ``ctx.metadata``)
and the review's output is the run's result. A second run with one file checks the
single-dependency input, and an issue that fails validation fails the plan step."""

from __future__ import annotations

import pytest

import dagnats
from dagnats.testing import DagnatsEnv
from examples.planner_pipeline.trigger import ISSUE, planned_steps
from examples.planner_pipeline.worker import worker
from examples.planner_pipeline.workflow import WORKFLOW_FILE, workflow


def test_the_file_loads_unchanged() -> None:
    defn = workflow.to_definition()
    plan = defn.step("plan")
    assert plan.type == "planner" and plan.timeout == 30_000_000_000
    assert dagnats.Workflow.from_json(WORKFLOW_FILE.read_text()).to_dict() == workflow.to_dict()


async def test_the_plan_joins_the_run_and_is_reviewed(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(workflow, ISSUE)
    result = await run.result(timeout=30)
    assert result == {"approved": True, "files": sorted(ISSUE["files"]), "by": "reviewer"}
    assert await planned_steps(run) == [
        "plan.implement-0",
        "plan.implement-1",
        "plan.test",
        "plan.review",
    ]
    state = await run.status()
    assert state.steps["plan.implement-1"].output["file"] == "blog/urls.py"
    assert all(s.status == "completed" for s in state.steps.values())

    one = await dagnats_env.client.start(workflow, {"title": "t", "files": ["a.py"]})
    assert (await one.result(timeout=30))["files"] == ["a.py"]


async def test_a_bad_issue_fails_the_plan(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(workflow, {"title": "t", "files": []})
    with pytest.raises(dagnats.RunFailedError, match="files"):
        await run.result(timeout=30)
