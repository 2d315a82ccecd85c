"""The planner pipeline's handlers: a planner that splits an issue into per-file agent steps.

``plan-work`` returns a fragment: one ``implement`` agent step per file (``metadata.role`` =
``coder``), a ``run-tests`` step after all of them and a ``review`` agent step (role
``reviewer``) at the end. The engine checks the fragment, prefixes its ids with ``plan.``
and runs it as part of the same run. The "agents" here are deterministic stand-ins for LLM
calls, so the example runs offline.

Run it from the repository root (the ``examples`` package is not installed with dagnats):
``dagnats worker examples.planner_pipeline.worker:worker``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

import dagnats

worker = dagnats.Worker()


class Issue(BaseModel):
    title: str
    files: list[str] = Field(min_length=1, max_length=10)


@worker.task("plan-work")
async def plan_work(ctx: dagnats.TaskContext, issue: Issue) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {
            "id": f"implement-{i}",
            "task": "implement",
            "type": "agent",
            "metadata": {"role": "coder", "file": path},
            "retry": {"max_attempts": 2, "initial_delay": "100ms"},
        }
        for i, path in enumerate(issue.files)
    ]
    steps.append({"id": "test", "task": "run-tests", "depends_on": [s["id"] for s in steps]})
    steps.append(
        {
            "id": "review",
            "task": "review",
            "type": "agent",
            "depends_on": ["test"],
            "metadata": {"role": "reviewer"},
        }
    )
    ctx.logger.info("planned %d steps for %r", len(steps), issue.title)
    return {"steps": steps}


@worker.task()
async def implement(ctx: dagnats.TaskContext) -> dict[str, str]:
    path = ctx.metadata["file"]
    return {
        "file": path,
        "patch": f"--- a/{path}\n+++ b/{path}\n+# {ctx.metadata['role']} was here",
    }


@worker.task("run-tests")
async def run_tests(ctx: dagnats.TaskContext, patches: dict[str, Any]) -> dict[str, Any]:
    # One implement step gives its output; several give {step id: output}.
    found = [patches] if "file" in patches else list(patches.values())
    return {"passed": True, "files": sorted(p["file"] for p in found)}


@worker.task()
async def review(ctx: dagnats.TaskContext, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "approved": bool(report["passed"]),
        "files": report["files"],
        "by": ctx.metadata["role"],
    }
