"""Several engines on one server: partitions shared by leases, handed over on a kill.

Each engine has its own NATS connection (``dagnats.testing.engines``), as separate
processes would; a kill drops that connection without a graceful stop, so its leases
lapse after their TTL and its unacked events come back after their ack wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

import dagnats
from dagnats import protocol
from dagnats._nats.leases import read_view
from dagnats._nats.resources import history_partitions, setup_resources
from dagnats._nats.stores import FencedError, RunStore
from dagnats._nats.types import StreamConfig
from dagnats.engine import Engine
from dagnats.errors import DagnatsError
from dagnats.protocol import events as ev
from dagnats.protocol.partitions import LEASE_TTL_S, partition_of
from dagnats.server import EmbeddedNats
from dagnats.testing import DagnatsEnv, wait_event
from dagnats.testing.engines import (
    engines,
    kill_engine,
    pause_engine,
    resume_engine,
    start_engine,
    stop_engine,
    wait_partitions,
)

RUNS = 300
RESULT_S = 120.0


class Calls(Counter[str]):
    """Handler executions per idempotency key (one per run, step and attempt)."""


def three_steps(calls: Calls | None = None) -> tuple[dagnats.Worker, dagnats.Workflow]:
    worker = dagnats.Worker(name="engines", concurrency=64)
    seen = calls if calls is not None else Calls()

    @worker.task()
    async def one(ctx: dagnats.TaskContext, n: int) -> int:
        seen[ctx.idempotency_key] += 1
        return n + 1

    @worker.task()
    async def two(ctx: dagnats.TaskContext, n: int) -> int:
        seen[ctx.idempotency_key] += 1
        return n * 2

    @worker.task()
    async def three(ctx: dagnats.TaskContext, n: int) -> int:
        seen[ctx.idempotency_key] += 1
        return n - 1

    wf = dagnats.Workflow("three-steps")
    a = wf.step(one)
    b = wf.step(two, depends_on=[a])
    wf.step(three, depends_on=[b])
    return worker, wf


def expected(i: int) -> int:
    return (i + 1) * 2 - 1


async def results(runs: list[dagnats.RunHandle]) -> list[object]:
    return await asyncio.wait_for(
        asyncio.gather(*(r.result(timeout=RESULT_S) for r in runs)), RESULT_S + 10
    )


async def assert_applied_once(runs: list[dagnats.RunHandle]) -> None:
    """Each run's history records each step's completion and the run's end exactly once."""
    for run in runs:
        types = Counter(
            (e.type, e.step_id) for e in [x async for x in run.events()] if not e.is_input
        )
        ends = [k for k in types if k[0] == ev.WORKFLOW_COMPLETED]
        assert ends and all(types[k] == 1 for k in types), (run.run_id, types)


async def test_two_engines_complete_every_run() -> None:
    async with DagnatsEnv.start(engine=False) as env, engines(env.url, 2) as (a, b):
        assert sorted(a.leases.held + b.leases.held) == list(range(a.partitions))
        assert len(a.leases.held) == len(b.leases.held) == a.partitions // 2
        worker, wf = three_steps()
        env.add_worker(worker)
        await env.wait_workers_ready()
        runs = [await env.client.start(wf, i) for i in range(RUNS)]
        assert await results(runs) == [expected(i) for i in range(RUNS)]
        assert a.applied > 0 and b.applied > 0  # both did work


async def test_three_engines_share_the_partitions_and_survive_a_kill() -> None:
    calls = Calls()
    async with DagnatsEnv.start(engine=False) as env, engines(env.url, 3) as group:
        n = group[0].partitions
        assert sorted(len(e.leases.held) for e in group) == [2, 3, 3]  # of 8
        worker, wf = three_steps(calls)
        env.add_worker(worker)
        await env.wait_workers_ready()
        runs = [await env.client.start(wf, i) for i in range(RUNS)]
        await asyncio.sleep(0.2)  # some runs are being applied by the victim
        victim = group[1]
        lost = victim.leases.held
        killed_at = time.monotonic()
        await kill_engine(victim)
        survivors = [group[0], group[2]]
        handover_s = await wait_partitions(survivors, timeout_s=3 * LEASE_TTL_S)
        assert handover_s <= 10.0
        assert set(lost) <= {p for e in survivors for p in e.leases.held}
        assert sorted(p for e in survivors for p in e.leases.held) == list(range(n))
        assert await results(runs) == [expected(i) for i in range(RUNS)]
        print(f"handover {handover_s:.2f}s; all done {time.monotonic() - killed_at:.2f}s after")
        assert all(count == 1 for count in calls.values()), calls.most_common(3)
        assert len(calls) == 3 * RUNS
        await assert_applied_once(runs)


async def test_a_paused_engine_is_fenced_and_rejoins() -> None:
    async with DagnatsEnv.start(engine=False) as env:
        a = await start_engine(env.url)
        b: Engine | None = None
        try:
            worker, wf = three_steps()
            env.add_worker(worker)
            await env.wait_workers_ready()
            first = await env.client.start(wf, 1)
            assert await first.result(timeout=RESULT_S) == expected(1)
            part = partition_of(first.run_id, a.partitions)
            old_epoch = a.leases.epoch(part)
            pause_engine(a)  # renewals stop: its leases lapse, here and on the server
            b = await start_engine(env.url)
            await wait_partitions([b], timeout_s=3 * LEASE_TTL_S)
            assert a.leases.held == []  # it knows, without the server telling it
            assert b.leases.epoch(part) > old_epoch
            # While paused it cannot write, even a snapshot it still has cached.
            state = await first.status()
            with pytest.raises(FencedError):
                await a.parts.runs.save(state, 0)
            # Runs started meanwhile are B's; B's snapshots are refused to the old epoch (B
            # took every partition after A's leases expired: each of its epochs is newer).
            during = [await env.client.start(wf, i) for i in range(20)]
            assert await results(during) == [expected(i) for i in range(20)]
            stale = RunStore(a.parts.runs.kv, a.parts.runs.payloads)
            stale.fence = lambda _run_id: old_epoch
            for newer in during[:3]:
                with pytest.raises(FencedError):
                    await stale.load(newer.run_id)
            resume_engine(a)  # it rejoins with fresh leases and an empty cache for them
            await a.leases.tick()
            await wait_partitions([a, b], timeout_s=3 * LEASE_TTL_S)
            after = [await env.client.start(wf, i) for i in range(40)]
            assert await results(after) == [expected(i) for i in range(40)]
            await assert_applied_once([first, *during, *after])
        finally:
            for e in (a, b):
                if e is not None:
                    await stop_engine(e)


async def test_a_graceful_stop_hands_the_partitions_over_at_once() -> None:
    async with DagnatsEnv.start(engine=False) as env, engines(env.url, 2) as (a, b):
        worker, wf = three_steps()
        env.add_worker(worker)
        await env.wait_workers_ready()
        runs = [await env.client.start(wf, i) for i in range(100)]
        await stop_engine(a)
        await b.leases.tick()  # its next round would do the same within LEASE_RENEW_S
        assert b.leases.held == list(range(b.partitions))
        assert await results(runs) == [expected(i) for i in range(100)]
        view = await read_view(env.nc)
        assert set(view.holders.values()) == {b.engine_id}
        assert a.engine_id not in view.engines


async def test_the_partition_count_is_fixed_once_the_stream_exists() -> None:
    async with DagnatsEnv.start(engine=False, api=False) as env:
        js = env.nc.jetstream()
        await setup_resources(js, partitions=8)  # the same count: fine
        with pytest.raises(DagnatsError, match="has 8 partitions and 4 were asked"):
            await setup_resources(js, partitions=4)
        with pytest.raises(ValueError, match="partitions must be an integer from 1 to 256"):
            await setup_resources(js, partitions=0)


async def test_the_server_maps_runs_as_partition_of_does() -> None:
    server = EmbeddedNats(port=0)
    await server.start()
    try:
        async with DagnatsEnv.start(nats_url=server.url, engine=False, api=False) as env:
            js = env.nc.jetstream()
            ids = [protocol.new_run_id() for _ in range(50)] + ["a", "run-1", "x" * 128]
            for run_id in ids:
                ack = await js.publish(protocol.history_subject(run_id), b"{}")
                stored = await js.get_msg(protocol.HISTORY_STREAM, ack.seq)
                assert stored.subject == f"history.{partition_of(run_id, 8)}.{run_id}"
    finally:
        await server.close()


async def test_a_restart_under_the_same_id_takes_its_partitions_back_at_once() -> None:
    async with DagnatsEnv.start(engine=False) as env:
        first = await start_engine(env.url, engine_id="stable-1")
        epochs = {p: first.leases.epoch(p) for p in first.leases.held}
        await kill_engine(first)  # its leases stay on the server for LEASE_TTL_S
        t0 = time.monotonic()
        second = await start_engine(env.url, engine_id="stable-1")
        try:
            assert second.leases.held == list(range(second.partitions))
            assert time.monotonic() - t0 < LEASE_TTL_S  # no lapse waited out
            assert all(second.leases.epoch(p) > epochs[p] for p in epochs)
            worker, wf = three_steps()
            env.add_worker(worker)
            await env.wait_workers_ready()
            run = await env.client.start(wf, 3)
            assert await run.result(timeout=RESULT_S) == expected(3)
        finally:
            await stop_engine(second)


def test_an_engine_id_must_be_a_key_token() -> None:
    with pytest.raises(ValueError, match="engine id must be 1 to 128 letters"):
        Engine(None, engine_id="a.b")  # type: ignore[arg-type]


async def test_timers_and_event_matches_fire_once_with_two_engines() -> None:
    """The engine services (timers, the correlator) are shared consumers: each message
    reaches one engine, so each sleep wakes its run once and each event matches once."""
    async with DagnatsEnv.start(engine=False) as env, engines(env.url, 2) as (a, b):
        wf = dagnats.Workflow("nap-then-wait")
        nap = wf.sleep("nap", duration="200ms")
        wf.wait_for_event(
            "paid",
            event="paid.once",
            match={"order_id": "run.input.order_id"},
            depends_on=[nap],
        )
        runs = [await env.client.start(wf, {"order_id": f"o-{i}"}) for i in range(40)]
        for run in runs:
            await wait_event_started(run)
        for i in range(40):
            await env.client.publish_event("paid.once", {"order_id": f"o-{i}", "n": i})
        outputs = await results(runs)
        assert outputs == [{"order_id": f"o-{i}", "n": i} for i in range(40)]
        for run in runs:
            types = Counter(e.type for e in [x async for x in run.events()])
            assert types[ev.TIMER_FIRED] == 1 and types[ev.STEP_WAIT_MATCHED] == 1, types
        assert a.parts.timers.fired + b.parts.timers.fired >= 40


async def wait_event_started(run: dagnats.RunHandle) -> None:
    await wait_event(run, ev.STEP_WAIT_STARTED, timeout=RESULT_S)


async def test_a_history_stream_from_before_partitions_is_partitioned_or_refused() -> None:
    server = EmbeddedNats(port=0)
    await server.start()
    try:
        async with DagnatsEnv.start(nats_url=server.url, engine=False, api=False) as env:
            js = env.nc.jetstream()
            await js.delete_stream(protocol.HISTORY_STREAM)
            legacy = StreamConfig(name=protocol.HISTORY_STREAM, subjects=["history.>"])
            await js.add_stream(legacy)  # as an earlier dagnats made it: no transform
            await setup_resources(js)  # empty: partitioned in place
            info = await js.stream_info(protocol.HISTORY_STREAM)
            assert history_partitions(info.config) == 8
            await js.delete_stream(protocol.HISTORY_STREAM)
            await js.add_stream(legacy)
            await js.publish(protocol.history_subject("old-run"), b"{}")
            with pytest.raises(DagnatsError, match="created by a dagnats before partitioned"):
                await setup_resources(js)
    finally:
        await server.close()
