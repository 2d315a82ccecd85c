"""Methodology: the agent loop run end to end on a real nats-server (``dagnats_env``): a
3-iteration run with a crash injected after a checkpoint (the retry must resume from it and
not repeat the expensive call), a run that hits ``max_iterations``, and the handler called
directly with a fake context; every wait is bounded."""

from __future__ import annotations

import time

import pytest

import dagnats
from dagnats.testing import DagnatsEnv, fake_context
from examples.agent_loop.worker import (
    Answer,
    Research,
    ThinkCounter,
    research,
    worker,
)
from examples.agent_loop.workflow import MAX_ITERATIONS, workflow


async def test_loop_resumes_from_its_checkpoint(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    calls_before = ThinkCounter.calls
    started = time.monotonic()
    run = await dagnats_env.client.start(
        workflow, {"question": "q", "notes_needed": 3, "crash_at_iteration": 1}
    )
    out = Answer.model_validate(await run.result(timeout=20))
    assert out.iterations == 3 and len(out.notes) == 3
    # Two loop delays of 100 ms separate the three iterations.
    assert time.monotonic() - started >= 0.2
    # Four handler runs (iteration 1 ran twice), but only three expensive calls.
    assert ThinkCounter.calls - calls_before == 3

    events = [e async for e in run.events()]
    assert [e.iteration for e in events if e.type == "step.continue"] == [0, 1]
    failed = [e for e in events if e.type == "step.failed"]
    assert [(e.iteration, e.attempt) for e in failed] == [(1, 1)]
    assert "simulated crash" in failed[0].data["error"]
    state = await run.status()
    assert state.steps["research"].status == "completed"
    assert state.steps["research"].iteration == 2


async def test_max_iterations_fails_the_run(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    calls_before = ThinkCounter.calls
    run = await dagnats_env.client.start(workflow, {"question": "q", "notes_needed": 10})
    with pytest.raises(dagnats.RunFailedError) as info:
        await run.result(timeout=20)
    assert info.value.status == "failed"
    assert info.value.step_id == "research"
    assert "max_iterations" in str(info.value)
    assert ThinkCounter.calls - calls_before == MAX_ITERATIONS


async def test_handler_resumes_from_a_checkpoint_without_nats() -> None:
    ctx = fake_context(iteration=1, checkpoint={"iteration": 1, "note": "saved note"})
    calls_before = ThinkCounter.calls
    out = await research(ctx, Research(question="q", notes=["first"]))
    assert out == dagnats.Continue(Research(question="q", notes=["first", "saved note"]))
    assert ThinkCounter.calls == calls_before

    done = await research(fake_context(iteration=2), Research(question="q", notes=["a", "b"]))
    assert isinstance(done, Answer) and done.iterations == 3
