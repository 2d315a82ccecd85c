"""Methodology: the ``dagnats`` command in subprocesses against a real server (the test's
environment): retry, rerun, bulk, cancel-all, dlq list/replay, prefixes and ``--last``,
``run list --since``, and the one-line errors (exit 1) for bad input."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import dagnats
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, wait_state
from tests.integration.test_redrive import Flaky, _failed_run

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 60.0


async def cli(env: DagnatsEnv, *args: str) -> tuple[int, str, str]:
    """``dagnats ARGS --nats-url URL``: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dagnats",
        *args,
        "--nats-url",
        env.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ok(env: DagnatsEnv, *args: str) -> Any:
    code, out, err = await cli(env, *args, "--json")
    assert code == 0, (args, out, err)
    return json.loads(out)


async def test_retry_and_dlq_from_the_command_line(dagnats_env: DagnatsEnv) -> None:
    flaky = Flaky()
    run = await _failed_run(dagnats_env, flaky, "cli-retry")
    code, out, err = await cli(dagnats_env, "run", "status", "--last")
    assert code == 0 and run.run_id in out and "failed" in out, (out, err)
    letters = await ok(dagnats_env, "dlq", "list", "--run", run.run_id[:24])
    assert [d["step_id"] for d in letters["dead_letters"]] == ["transform"]
    code, _, err = await cli(dagnats_env, "run", "retry", run.run_id[:4])
    assert code == 1 and "at least 8 characters" in err and run.run_id in err
    assert err.count("\n") == 1  # one line
    flaky.broken = False
    seq = str(letters["dead_letters"][0]["seq"])
    replayed = await ok(dagnats_env, "dlq", "replay", seq)
    assert replayed["run_id"] == run.run_id and replayed["dead_letters_removed"] == [int(seq)]
    assert await run.result(timeout=WAIT_S) == "stored 40"
    code, _, err = await cli(dagnats_env, "dlq", "replay", seq)
    assert code == 1 and "already replayed" in err
    code, _, err = await cli(dagnats_env, "run", "retry", run.run_id)
    assert code == 1 and "is completed; only a failed or cancelled run" in err
    again = await ok(dagnats_env, "run", "rerun", "--last", "--watch")
    assert again["ok"] and again["output"] == "stored 40"
    state = await dagnats_env.client.get_run(again["run_id"])
    assert state.rerun_of == run.run_id


async def test_retry_watch_and_the_failure_exit(dagnats_env: DagnatsEnv) -> None:
    flaky = Flaky()
    run = await _failed_run(dagnats_env, flaky, "cli-watch")
    code, _, err = await cli(dagnats_env, "run", "retry", run.run_id, "--watch")
    assert code == 1 and "transform is broken" in err  # still broken: exit 1
    flaky.broken = False
    out = await ok(dagnats_env, "run", "retry", "--last", "--watch")
    assert out == {"run_id": run.run_id, "ok": True, "output": "stored 40"}


async def test_bulk_and_cancel_all(dagnats_env: DagnatsEnv, tmp_path: Path) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def park(ctx: dagnats.TaskContext, inp: Any) -> str:
        await asyncio.sleep(WAIT_S)
        return "late"

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("cli-bulk", input_schema={"type": "integer"})
    wf.step("park")
    await dagnats_env.client.register(wf)
    lines = tmp_path / "inputs.jsonl"
    lines.write_text('1\n\n2\n"x"\n')
    code, out, err = await cli(dagnats_env, "run", "bulk", "cli-bulk", "--from-file", str(lines))
    assert code == 1 and "2 started, 1 refused" in out, (out, err)
    rows = await ok(dagnats_env, "run", "list", "--workflow", "cli-bulk", "--since", "10m")
    ids = {r["run_id"] for r in rows}
    assert len(ids) == 2
    for rid in ids:
        await wait_state(dagnats_env, rid, lambda s: s.steps["park"].status == "running")
    dry = await ok(dagnats_env, "run", "cancel-all", "--workflow", "cli-bulk", "--dry-run")
    assert set(dry["run_ids"]) == ids and dry["cancelled"] == 0
    done = await ok(dagnats_env, "run", "cancel-all", "--workflow", "cli-bulk")
    assert set(done["run_ids"]) == ids and done["cancelled"] == 2
    code, _, err = await cli(dagnats_env, "run", "cancel-all")
    assert code == 1 and "takes a filter" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("1\n{nope\n")
    code, _, err = await cli(dagnats_env, "run", "bulk", "cli-bulk", "--from-file", str(bad))
    assert code == 1 and "bad.jsonl:2: not JSON" in err
    code, _, err = await cli(dagnats_env, "run", "list", "--since", "yesterday")
    assert code == 1 and "neither a duration" in err
    future = await ok(dagnats_env, "run", "list", "--since", "2999-01-01T00:00:00Z")
    assert future == []
