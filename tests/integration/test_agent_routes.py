"""Methodology: the engine's agent routes (``metadata.role`` -> worker group) on a real
nats-server. Three workers serve the same task ``llm``: one in group ``gpu``, one in group
``agents``, one ungrouped; each answers with its own name, so the output of a step says
which subject its task was published on. No mock: the routing is the engine's publish."""

from __future__ import annotations

from typing import Any

import dagnats
from dagnats.testing import DagnatsEnv

WAIT_S = 20.0


def llm_worker(name: str, groups: tuple[str, ...]) -> dagnats.Worker:
    worker = dagnats.Worker(groups=groups, serve_ungrouped=not groups, name=name)

    @worker.task()
    async def llm(ctx: dagnats.TaskContext, data: Any) -> dict[str, Any]:
        return {"worker": name, "role": ctx.metadata.get("role")}

    return worker


def add_workers(env: DagnatsEnv) -> None:
    env.add_worker(llm_worker("gpu", ("gpu",)))
    env.add_worker(llm_worker("agents", ("agents",)))
    env.add_worker(llm_worker("plain", ()))


ROUTED = {
    "name": "routed.agents",
    "steps": [
        {"id": "code", "task": "llm", "type": "agent", "metadata": {"role": "coder"}},
        {"id": "review", "task": "llm", "type": "agent", "metadata": {"role": "reviewer"}},
        {"id": "bare", "task": "llm", "type": "agent"},
        {
            "id": "pinned",
            "task": "llm",
            "type": "agent",
            "worker_group": "gpu",
            "metadata": {"role": "reviewer"},
        },
        # A normal step is never routed by its metadata (as in Go: routes go by type).
        {"id": "plain.step", "task": "llm", "metadata": {"role": "coder"}},
    ],
}


async def outputs(env: DagnatsEnv, definition: dict[str, Any]) -> dict[str, Any]:
    await env.client.register(definition)
    run = await env.client.start(definition["name"], None)
    await run.result(timeout=WAIT_S)
    state = await run.status()
    return {sid: st.output["worker"] for sid, st in state.steps.items()}


async def test_agent_steps_go_to_the_group_their_role_names(dagnats_env: DagnatsEnv) -> None:
    await dagnats_env.stop_engine()
    await dagnats_env.start_engine(agent_routes={"coder": "gpu", "*": "agents"})
    add_workers(dagnats_env)
    assert await outputs(dagnats_env, ROUTED) == {
        "code": "gpu",  # its role's route
        "review": "agents",  # no route of its own: the "*" route
        "bare": "agents",  # no role at all: the "*" route
        "pinned": "gpu",  # its own worker_group wins over any route
        "plain.step": "plain",  # a normal step: not an agent, not routed
    }


async def test_without_routes_an_agent_step_is_a_normal_one(dagnats_env: DagnatsEnv) -> None:
    add_workers(dagnats_env)
    found = await outputs(dagnats_env, ROUTED)
    assert found == {"code": "plain", "review": "plain", "bare": "plain", "pinned": "gpu"} | {
        "plain.step": "plain"
    }


async def test_a_planners_agent_steps_are_routed_too(dagnats_env: DagnatsEnv) -> None:
    await dagnats_env.stop_engine()
    await dagnats_env.start_engine(agent_routes={"coder": "gpu"})
    add_workers(dagnats_env)
    planner = dagnats.Worker(name="planner")

    @planner.task()
    async def plan(ctx: dagnats.TaskContext, data: Any) -> dict[str, Any]:
        return {
            "steps": [
                {"id": "code", "task": "llm", "type": "agent", "metadata": {"role": "coder"}},
                {"id": "doc", "task": "llm", "type": "agent", "metadata": {"role": "writer"}},
            ]
        }

    dagnats_env.add_worker(planner)
    definition = {
        "name": "planned.agents",
        "steps": [{"id": "plan", "task": "plan", "type": "planner", "config": {"max_steps": 5}}],
    }
    await dagnats_env.client.register(definition)
    run = await dagnats_env.client.start("planned.agents", None)
    await run.result(timeout=WAIT_S)
    steps = (await run.status()).steps
    assert steps["plan.code"].output == {"worker": "gpu", "role": "coder"}
    assert steps["plan.doc"].output == {"worker": "plain", "role": "writer"}  # no route
