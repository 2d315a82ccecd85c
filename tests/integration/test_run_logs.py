"""Methodology: a handler's ctx.logger lines end up in the run's log on a real nats-server.

A step logs 150 lines and fails, its retry logs 100 more and completes: the log holds the
last 200 over both attempts with 50 counted as dropped; map items get a record each;
``dagnats run logs`` prints them (text, ``--step``, ``--json``, an unknown step refused);
deleting the run removes its log.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner, Result

import dagnats
from dagnats import protocol
from dagnats._nats.logs import read_run_logs
from dagnats.cli.app import app
from dagnats.errors import RunNotFoundError
from dagnats.testing import DagnatsEnv

runner = CliRunner()


async def cli(*args: str) -> Result:
    return await asyncio.wait_for(asyncio.to_thread(runner.invoke, app, list(args)), 30)


async def test_handler_logs_are_kept_per_step_and_bounded(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def chatty(ctx: dagnats.TaskContext) -> int:
        n = 150 if ctx.attempt == 1 else 100
        for i in range(n):
            ctx.logger.info("attempt %d line %d", ctx.attempt, i)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return n

    @worker.task()
    async def item(ctx: dagnats.TaskContext, x: int) -> int:
        ctx.logger.warning("item %d", x)
        return x

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("logs-flow")
    c = wf.step(
        "chatty",
        retry=dagnats.RetryPolicy(max_attempts=2, strategy="fixed", initial_delay="10ms"),
    )
    wf.map("each", task="item", depends_on=[c], max_items=10)
    run = await dagnats_env.client.start(wf, None)
    with pytest.raises(dagnats.RunFailedError):
        await run.result(timeout=20)  # the map gets 100, not a list: it fails after chatty
    logs = await dagnats_env.client.run_logs(run.run_id)
    chatty_log = logs["chatty"]
    # 150 + the runner's note of the failure + 100 lines: the last 200 are kept
    assert len(chatty_log.lines) == 200 and chatty_log.dropped == 51
    messages = [line.message for line in chatty_log.lines]
    assert messages[0].endswith("attempt 1 line 51")
    assert messages[-1].endswith("attempt 2 line 99")
    assert "handler raised RuntimeError (RuntimeError: first attempt fails)" in messages[99]

    res = await cli("run", "logs", run.run_id, "--nats-url", dagnats_env.url, "--step", "chatty")
    assert res.exit_code == 0, res.output
    assert "[chatty] … 51 older lines dropped" in res.output
    assert "INFO    [chatty#2] " in res.output
    res = await cli("run", "logs", "--last", "--nats-url", dagnats_env.url, "--json")
    assert json.loads(res.output)["chatty"]["dropped"] == 51
    res = await cli("run", "logs", run.run_id, "--nats-url", dagnats_env.url, "--step", "nope")
    assert res.exit_code == 1 and "has no step 'nope'" in res.output

    await dagnats_env.client.delete_run(run.run_id)
    with pytest.raises(RunNotFoundError):
        await dagnats_env.client.run_logs(run.run_id)
    kv = await dagnats_env.client.kv(protocol.KV_LOGS)
    assert await read_run_logs(kv, run.run_id) == {}


async def test_map_items_have_a_log_each(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def items(ctx: dagnats.TaskContext) -> list[int]:
        return [1, 2, 3]

    @worker.task()
    async def item(ctx: dagnats.TaskContext, x: int) -> int:
        ctx.logger.warning("item %d", x)
        return x

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("logs-map")
    wf.map("each", task="item", depends_on=[wf.step("items")], max_items=10)
    run = await dagnats_env.client.start(wf, None)
    assert await run.result(timeout=20) == [1, 2, 3]
    logs = await dagnats_env.client.run_logs(run.run_id)
    assert {k: [line.message for line in v.lines] for k, v in logs.items()} == {
        "each.0": ["item 1"],
        "each.1": ["item 2"],
        "each.2": ["item 3"],
    }
