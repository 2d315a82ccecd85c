"""`dagnats engine` started three times shares the partitions; a SIGKILLed one's partitions
are taken over by the others within the lease TTL, and every run completes once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from dagnats._nats.leases import LeaseView, read_view
from dagnats._nats.types import NatsClient
from dagnats.protocol.partitions import LEASE_RENEW_S, LEASE_TTL_S
from dagnats.testing import DagnatsEnv
from tests.integration.test_engines import Calls, assert_applied_once, expected, three_steps

ROOT = Path(__file__).resolve().parents[2]
START_S = 60.0  # three interpreters starting on a loaded 2-core machine
RUNS = 150


async def wait_view(nc: NatsClient, engines: int, timeout_s: float) -> LeaseView:
    """The lease bucket once ``engines`` engines hold all 8 partitions between them.

    Looked at once per renewal round: a lease expiring tells no watcher, and the rounds are
    when the engines act on it anyway."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = await read_view(nc)
        holders = set(view.holders.values())
        if len(view.holders) == 8 and len(holders) == engines and holders <= set(view.engines):
            return view
        if time.monotonic() > deadline:
            raise TimeoutError(f"engines did not settle within {timeout_s}s: {view}")
        await asyncio.sleep(LEASE_RENEW_S / 3)


async def test_three_engine_processes_share_and_survive_a_sigkill() -> None:
    calls = Calls()
    async with DagnatsEnv.start(engine=False) as env:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dagnats",
                "engine",
                "--nats-url",
                env.url,
                "--log-level",
                "warning",
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            for _ in range(3)
        ]
        try:
            view = await wait_view(env.nc, 3, START_S)
            shares = Counter(view.holders.values())
            assert sorted(shares.values()) == [2, 3, 3]
            worker, wf = three_steps(calls)
            env.add_worker(worker)
            await env.wait_workers_ready()
            runs = [await env.client.start(wf, i) for i in range(RUNS)]
            victim = procs[0]
            victim.send_signal(signal.SIGKILL)
            await asyncio.wait_for(victim.wait(), 10)
            killed = time.monotonic()
            after = await wait_view(env.nc, 2, 3 * LEASE_TTL_S)
            handover_s = time.monotonic() - killed
            print(f"SIGKILLed engine's partitions taken over after {handover_s:.2f}s")
            assert handover_s <= 10.0, handover_s
            assert sorted(Counter(after.holders.values()).values()) == [4, 4]
            results = await asyncio.wait_for(
                asyncio.gather(*(r.result(timeout=60) for r in runs)), 70
            )
            assert results == [expected(i) for i in range(RUNS)]
            assert len(calls) == 3 * RUNS and set(calls.values()) == {1}
            await assert_applied_once(runs)
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
