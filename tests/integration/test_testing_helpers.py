"""The shipped test helpers ``wait_event`` / ``wait_state`` against a real environment."""

from __future__ import annotations

import pytest

import dagnats
from dagnats.testing import DagnatsEnv, wait_event, wait_state


def pipeline() -> tuple[dagnats.Worker, dagnats.Workflow]:
    worker = dagnats.Worker(name="helpers")

    @worker.task()
    async def shout(ctx: dagnats.TaskContext, text: str) -> str:
        return text.upper()

    wf = dagnats.Workflow("helpers-wf")
    wf.step(shout)
    wf.approval("ok", depends_on=["shout"], timeout="1h")
    return worker, wf


async def test_wait_event_and_wait_state_see_what_the_run_does(dagnats_env: DagnatsEnv) -> None:
    worker, wf = pipeline()
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(wf, "hi")
    done = await wait_event(run, "step.completed", step_id="shout")
    assert done.data["output"] == "HI"
    asked = await wait_event(run, "step.approval.requested")
    state = await wait_state(run, "running", step_id="ok")
    assert state.steps["shout"].output == "HI"
    await dagnats_env.client.approve(asked.data["token"])
    final = await wait_state(run, "completed")
    assert final.steps["ok"].status == "completed"


async def test_the_helpers_time_out_naming_what_they_waited_for(dagnats_env: DagnatsEnv) -> None:
    _, wf = pipeline()
    run = await dagnats_env.client.start(wf, "hi")  # no worker: nothing happens
    with pytest.raises(TimeoutError, match=r"step\.completed"):
        await wait_event(run, "step.completed", timeout=0.3)
    with pytest.raises(TimeoutError, match="status 'completed'"):
        await wait_state(run, "completed", timeout=0.3)
    with pytest.raises(ValueError, match="needs a status"):
        await wait_state(run)
