"""A start whose history publish nobody answered stored nothing, and says so at once.

On a cluster, while the history stream elects a new leader (4-9 s after its leader dies),
a publish gets "no responders". The API used to ask the history whether the start had been
stored anyway; that read waited out the election too (5 s) and failed, so the idempotency
key was kept "in doubt", and the client's retry of the same start then waited the key's
grace (6 s) before taking it over: in tests/chaos/test_three_engines_cluster.py, probe runs
started during a history-leader kill were accepted 16 s after the kill, every partition
alike. Now a start nobody answered releases its key at once and the retry goes through as
soon as the stream answers again.
"""

from __future__ import annotations

import asyncio

import pytest

import dagnats
import dagnats.server.operations as ops_mod
from dagnats._nats.types import NoStreamResponseError
from dagnats.protocol import events as ev
from dagnats.testing import DagnatsEnv
from tests.integration.test_api_robustness import WAIT_S, _echo_flow, _fail_once, _is

RETRY_S = 5.0  # far below the grace below: the retry must not wait for the key


async def test_a_start_nobody_answered_releases_its_key_at_once(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow(dagnats_env))
    monkeypatch.setattr(ops_mod, "IDEMPOTENCY_GRACE_S", 60.0)  # a key in doubt blocks the retry
    real = ops_mod.Operations._has_history
    asked: list[str] = []

    async def history_in_an_election(self: ops_mod.Operations, run_id: str) -> bool:
        if not asked:  # the first read after the failed publish: the stream has no leader
            asked.append(run_id)
            raise TimeoutError("injected: the history stream has no leader")
        return await real(self, run_id)

    monkeypatch.setattr(ops_mod.Operations, "_has_history", history_in_an_election)
    failed = _fail_once(
        monkeypatch,
        dagnats_env,
        lambda subj, data: _is(subj, data, ev.WORKFLOW_STARTED),
        NoStreamResponseError(),
    )
    with pytest.raises(dagnats.ApiError):
        await client.start("robust-echo", 1, run_id="in-election", idempotency_key="order-9")
    assert failed
    run = await asyncio.wait_for(
        client.start("robust-echo", 1, run_id="in-election", idempotency_key="order-9"), RETRY_S
    )
    assert run.run_id == "in-election" and not run.duplicate
    assert await run.result(timeout=WAIT_S) == 1
