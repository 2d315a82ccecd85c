"""Methodology: the whole pipeline runs end to end on a real nats-server (``dagnats_env``)
with the deterministic fake LLM (three rounds to pass): the streamed output is read with
``run.stream("code")`` and must arrive complete and in order, the code step must run only on
the ``gpu`` worker (checked with the workers' outcome counters), the approval token is read
from the run's events and approved (or rejected), and the merge result is checked. The
handler is also called directly with a fake context to check streaming and checkpoint
resume. Every wait is bounded."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

import dagnats
from dagnats.testing import DagnatsEnv, fake_context
from examples.coding_pipeline.trigger import ISSUE, approval_token, start_streaming
from examples.coding_pipeline.worker import (
    DRAFTS,
    CodeState,
    FakeLLM,
    Issue,
    MergeResult,
    Patch,
    expected_stream,
    gpu_worker,
    worker,
    write_code,
)
from examples.coding_pipeline.workflow import workflow


async def test_pipeline_streams_loops_and_merges(dagnats_env: DagnatsEnv) -> None:
    cpu_before, gpu_before = replace(worker.stats), replace(gpu_worker.stats)
    dagnats_env.add_worker(worker)
    dagnats_env.add_worker(gpu_worker)
    client = dagnats_env.client
    calls_before = FakeLLM.calls

    run, reader = await start_streaming(client, ISSUE, timeout=30)
    token = await approval_token(run, timeout=30)
    chunks = await asyncio.wait_for(reader, 10)
    assert chunks == expected_stream()
    assert FakeLLM.calls - calls_before == 3

    await client.approve(token, {"reviewer": "ada", "comment": "LGTM"})
    result = MergeResult.model_validate(await run.result(timeout=20))
    assert result.repo == "acme/blog"
    assert result.reviewer == "ada"
    assert result.iterations == 3
    assert len(result.commit) == 12 and result.branch == f"fix-{result.commit[:7]}"

    events = [e async for e in run.events()]
    assert [e.iteration for e in events if e.type == "step.continue"] == [0, 1]
    # Routing by worker group: the three rounds of "code" ran on the gpu worker (two
    # Continues and one completion), plan, test and merge on the other one.
    assert gpu_worker.stats.continued - gpu_before.continued == 2
    assert gpu_worker.stats.completed - gpu_before.completed == 1
    assert worker.stats.completed - cpu_before.completed == 3
    assert worker.stats.continued == cpu_before.continued
    state = await run.status()
    assert state.steps["test"].output["passed"] == 3


async def test_rejected_review_does_not_merge(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    dagnats_env.add_worker(gpu_worker)
    client = dagnats_env.client
    run = await client.start(workflow, ISSUE)
    token = await approval_token(run, timeout=30)
    await client.reject(token, "needs a docstring")
    with pytest.raises(dagnats.RunFailedError) as info:
        await run.result(timeout=20)
    assert info.value.step_id == "review"
    state = await run.status()
    assert state.steps["merge"].status == "cancelled"


async def test_write_code_streams_and_resumes_without_nats() -> None:
    issue = Issue(repo="r", title="t", body="b")
    state = CodeState(issue=issue, plan=["p"])
    ctx = fake_context(iteration=0)
    out = await write_code(ctx, state)
    assert isinstance(out, dagnats.Continue)
    assert ctx.streamed == [c for c in expected_stream() if c["iteration"] == 0]
    assert ctx.checkpoints == {"test-run.test-step": {"iteration": 0, "source": DRAFTS[0]}}

    # A retry of round 2 whose draft was checkpointed: no model call, nothing re-streamed.
    calls_before = FakeLLM.calls
    ctx = fake_context(iteration=2, attempt=2, checkpoint={"iteration": 2, "source": DRAFTS[2]})
    done = await write_code(ctx, state)
    assert isinstance(done, Patch) and done.iterations == 3
    assert FakeLLM.calls == calls_before and ctx.streamed == []
