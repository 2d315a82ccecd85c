"""Methodology: first-hour stumbles that need a server: waiting runs, approvals, revisions.

Each is typed as a newcomer would: ``python -m dagnats ...`` as a subprocess against a real
environment (``DagnatsEnv`` in the test process: a private nats-server, engine and API);
exit status, stdout and stderr are checked as text or parsed JSON. A run is brought to the
state under test with the harness' ``wait_state`` (a KV watch with a deadline, no polling).
Every subprocess has a timeout.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import dagnats
from dagnats.testing import DagnatsEnv, wait_event, wait_state
from tests.e2e.test_first_hour import CLI_TIMEOUT_S, acli, cli_env, stamps

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _waiting_workflow(worker: dagnats.Worker) -> dagnats.Workflow:
    @worker.task()
    async def flaky(ctx: dagnats.TaskContext) -> str:
        raise RuntimeError("the service is down")

    wf = dagnats.Workflow("waits")
    wf.approval("ok", timeout="2h", message="Ship it?")
    wf.sleep("nap", duration="168h")
    wf.step(
        flaky,
        retry=dagnats.RetryPolicy(max_attempts=3, initial_delay="1h", strategy="fixed"),
    )
    return wf


def _utc(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


async def test_status_shows_an_approvals_token_and_message_and_wake_times() -> None:
    async with DagnatsEnv.start() as env:
        worker = dagnats.Worker(nats_url=env.url)
        wf = _waiting_workflow(worker)
        env.add_worker(worker)
        began = datetime.now(UTC)
        run = await env.client.start(wf, None)
        await wait_state(
            run,
            where=lambda s: (
                [s.steps[k].waiting for k in ("ok", "nap", "flaky")]
                == ["approval", "sleep", "retry"]
            ),
            timeout=30,
        )
        requested = [e async for e in run.events() if e.type == "step.approval.requested"]
        token = requested[0].data["token"]

        text = await acli("run", "status", run.run_id, "--nats-url", env.url)
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert any(
            line.startswith("Approval: step 'ok' waits for a decision: Ship it?, expires ")
            for line in lines
        ), text.stdout
        assert f"  dagnats approve {token} [DATA]  |  dagnats reject {token}" in lines
        assert any(line.startswith("Wakes: step 'nap' sleeps at ") for line in lines)
        assert any(line.startswith("Wakes: step 'flaky' retries at ") for line in lines)

        done = await acli("run", "status", run.run_id, "--json", "--nats-url", env.url)
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        [approval] = doc["approvals"]
        assert approval["step_id"] == "ok" and approval["token"] == token
        assert approval["message"] == "Ship it?"
        expires = _utc(approval["expires_at"])
        assert timedelta(hours=1) < expires - began < timedelta(hours=3)
        wakes = {w["step_id"]: w for w in doc["wakeups"]}
        assert wakes["nap"]["reason"] == "sleep" and wakes["flaky"]["reason"] == "retry"
        assert timedelta(days=6) < _utc(wakes["nap"]["at"]) - began < timedelta(days=8)
        assert timedelta(minutes=50) < _utc(wakes["flaky"]["at"]) - began < timedelta(hours=2)

        # Every --json output writes its times one way: RFC 3339 UTC with Z.
        for argv in (["run", "events", run.run_id], ["workers"], ["status"], ["run", "list"]):
            out = await acli(*argv, "--json", "--nats-url", env.url)
            assert out.returncode == 0, out.stderr
            seen = list(stamps(json.loads(out.stdout)))
            assert seen and all(s.endswith("Z") and "T" in s for s in seen), (argv, seen)

        # Decided: the approval is no longer listed.
        approved = await acli("approve", token, '"yes"', "--nats-url", env.url)
        assert approved.returncode == 0, approved.stderr
        await wait_state(run, "completed", step_id="ok", timeout=30)
        after = await acli("run", "status", run.run_id, "--json", "--nats-url", env.url)
        assert json.loads(after.stdout)["approvals"] == []
        await run.cancel()


async def _token(run: dagnats.RunHandle) -> str:
    event = await wait_event(run, "step.approval.requested", timeout=30)
    token: str = event.data["token"]
    return token


async def test_approve_without_the_data_a_typed_next_step_needs_says_so() -> None:
    from examples.approval.worker import worker
    from examples.approval.workflow import workflow

    async with DagnatsEnv.start() as env:
        env.add_worker(worker)
        await env.wait_workers_ready()
        run = await env.client.start(workflow, {"service": "billing", "version": "2.4.1"})
        token = await _token(run)

        bare = await acli("approve", token, "--nats-url", env.url)
        assert bare.returncode == 2 and bare.stdout == ""
        assert bare.stderr.startswith(
            "error: not approved: with no DATA the run would fail after the approval: step "
            "'deploy' (task 'deploy') gets the approval's data as its input's 'approve': "
        ), bare.stderr
        assert "it needs an object with approver, ticket" in bare.stderr
        half = await acli("approve", token, '{"approver": "ada"}', "--nats-url", env.url)
        assert half.returncode == 2 and "'ticket' is a required property" in half.stderr
        as_json = await acli("approve", token, "--json", "--nats-url", env.url)
        assert json.loads(as_json.stderr)["error"]["exit_status"] == 2

        # Nothing was spent: the token still approves, with the data the step needs.
        data = '{"approver": "ada", "ticket": "CHG-42"}'
        ok = await acli("approve", token, data, "--nats-url", env.url)
        assert ok.returncode == 0 and ok.stdout == "Approved\n", ok.stderr
        assert (await run.result(timeout=30)).endswith("(approved by ada, CHG-42)")


async def test_approve_without_the_input_a_sub_workflow_requires_says_so() -> None:
    async with DagnatsEnv.start() as env:
        child = dagnats.Workflow(
            "needs-name",
            input_schema={"type": "object", "required": ["name"]},
        )
        child.sleep("pause", duration="1ms")
        await env.client.register(child)
        parent = dagnats.Workflow("asks-first")
        ok = parent.approval("ok", timeout="1h")
        parent.sub_workflow("call", workflow="needs-name", depends_on=[ok])
        run = await env.client.start(parent, None)
        token = await _token(run)

        bare = await acli("approve", token, "--nats-url", env.url)
        assert bare.returncode == 2, bare.stdout + bare.stderr
        assert (
            "step 'call' (workflow 'needs-name') gets the approval's data as its input: "
            in bare.stderr
        )
        assert 'it needs an object with name, e.g. \'{"name": "..."}\'' in bare.stderr
        done = await acli("approve", token, '{"name": "Ada"}', "--nats-url", env.url)
        assert done.returncode == 0, done.stderr
        await run.result(timeout=30)


async def test_revisions_count_per_workflow_and_an_unknown_one_says_which_exist(
    tmp_path: Path,
) -> None:
    async with DagnatsEnv.start() as env:
        for name in ("first", "second"):
            wf = dagnats.Workflow(name)
            wf.sleep("nap", duration="1ms")
            await env.client.register(wf)
        one = tmp_path / "third.json"
        one.write_text(json.dumps({"name": "third", "steps": [{"id": "a", "task": "a"}]}))
        two = tmp_path / "third-2.json"
        two.write_text(json.dumps({"name": "third", "version": "2", "steps": [{"id": "a"}]}))

        registered = await acli("workflow", "register", str(one), "--nats-url", env.url)
        assert registered.stdout == "Registered workflow third version 1.0 (revision 1)\n"
        again = await acli("workflow", "register", str(one), "--nats-url", env.url)
        assert again.stdout.endswith("(revision 1)\n")  # the same definition: a no-op
        changed = await acli("workflow", "register", str(two), "--json", "--nats-url", env.url)
        assert json.loads(changed.stdout)["revision"] == 2
        listed = await acli("workflow", "list", "--json", "--nats-url", env.url)
        assert {w["name"]: w["revision"] for w in json.loads(listed.stdout)} == {
            "first": 1,
            "second": 1,
            "third": 2,
        }

        old = await acli("workflow", "show", "third", "--revision", "1", "--nats-url", env.url)
        assert old.returncode == 0 and json.loads(old.stdout)["version"] == "1.0"
        unknown = await acli("workflow", "show", "third", "--revision", "9", "--nats-url", env.url)
        assert unknown.returncode == 1 and unknown.stdout == ""
        assert unknown.stderr == "error: workflow 'third' has no revision 9; its revisions: 1-2\n"

        # A run pinned to revision 1 keeps it; deleted and registered again, numbering goes on.
        newer = dagnats.Workflow("first", version="2")
        newer.sleep("nap", duration="2ms")
        assert (await env.client.register(newer)).revision == 2
        pinned = await env.client.start("first", None, revision=1)
        await pinned.result(timeout=30)
        assert (await pinned.status()).revision == 1
        deleted = await acli("workflow", "delete", "third", "--nats-url", env.url)
        assert deleted.returncode == 0, deleted.stderr
        still = await acli("workflow", "show", "third", "--revision", "2", "--nats-url", env.url)
        assert still.returncode == 0 and json.loads(still.stdout)["version"] == "2"
        back = await acli("workflow", "register", str(one), "--nats-url", env.url)
        assert back.stdout.endswith("(revision 3)\n"), back.stdout + back.stderr


async def test_input_from_a_file_or_stdin_starts_the_run_with_it(tmp_path: Path) -> None:
    async with DagnatsEnv.start() as env:
        wf = dagnats.Workflow("takes-input")
        wf.sleep("nap", duration="1ms")
        await env.client.register(wf)
        given = tmp_path / "input.json"
        given.write_text('{"repo": "dagnats", "n": 3}\n')
        from_file = await acli(
            "run",
            "start",
            "takes-input",
            "--input-file",
            str(given),
            "--json",
            "--nats-url",
            env.url,
        )
        assert from_file.returncode == 0, from_file.stderr
        rid = json.loads(from_file.stdout)["run_id"]
        assert (await env.client.get_run(rid)).input == {"repo": "dagnats", "n": 3}

        def piped() -> subprocess.CompletedProcess[str]:
            argv = ["run", "start", "takes-input", "--input-file", "-", "--json"]
            return subprocess.run(
                [sys.executable, "-m", "dagnats", *argv, "--nats-url", env.url],
                input='"from stdin"',
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT_S,
                env=cli_env(),
            )

        done = await asyncio.to_thread(piped)
        assert done.returncode == 0, done.stderr
        rid = json.loads(done.stdout)["run_id"]
        assert (await env.client.get_run(rid)).input == "from stdin"
        given.write_text("{oops")
        bad = await acli(
            "run", "start", "takes-input", "--input-file", str(given), "--nats-url", env.url
        )
        assert bad.returncode == 2
        assert f"INPUT from {given}" in bad.stderr and "is not valid JSON" in bad.stderr
