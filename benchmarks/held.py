"""Workloads that each need a fresh stack: runs held, a killed engine, a grown engine.

- ``sleepers``: N runs asleep (1 h) in the engine: engine and nats-server RSS over idle,
  and how late a 5 s sleep fires beside them (limit: ``LATE_LIMIT_MS``);
- ``restart``: N active runs (each with its task dispatched), the engine killed (SIGKILL),
  the worker completing every task meanwhile, then the engine started cold: time from its
  process start until it pulls events, until it applies one again (its first run end; limit
  ``READY_LIMIT_S``; a dead engine's partition leases must expire first) and until all N
  runs have progressed (their completions applied; ratio to the floor's steps/s);
- ``rss``: engine RSS after N finished 3-step runs (``RSS_IN_FLIGHT`` at a time) over its
  idle RSS (target +15 MiB).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from benchmarks.session import Session
from benchmarks.stack import Stack
from benchmarks.workload import linear, nap
from dagnats.protocol import names

HOLD_S = 3600.0  # the held runs' sleep: they stay asleep for the whole workload
PROBE_S = 5.0
PROBE_GAP_S = 0.25
LATE_LIMIT_MS = 250.0
READY_LIMIT_S = 10.0
RSS_IN_FLIGHT = 1000  # the runs of ``rss`` go through 1,000 at a time, as in ``throughput``
SETTLE_S = 1.0  # write-behind snapshots land within 0.1 s; leave the process time to settle


def _start_rate(count: int, seconds: float) -> str:
    return f"{count} runs started in {seconds:.1f} s ({count / seconds:.0f}/s)"


async def _probe_lateness(stack: Stack, probes: int) -> list[float]:
    """``probes`` 5 s sleeps, started ``PROBE_GAP_S`` apart so that they do not all fire in
    one batch; how late each fired (ms, by the run's own step times)."""
    handles = []
    for _ in range(probes):
        handles.append(await stack.client.start("bench-probe"))
        await asyncio.sleep(PROBE_GAP_S)
    await stack.wait_all(handles, PROBE_S + 120)
    late = []
    for h in handles:
        st = (await h.status()).steps["nap"]
        if st.started_at is None or st.finished_at is None:
            raise RuntimeError(f"run {h.run_id}: the sleep step has no start/finish time")
        late.append(((st.finished_at - st.started_at).total_seconds() - PROBE_S) * 1e3)
    return late


async def sleepers(s: Session, count: int, probes: int, tag: str = "sleepers") -> None:
    async with Stack.open(uvloop=s.uvloop) as stack:
        await stack.register(
            nap("bench-hold", HOLD_S), nap("bench-probe", PROBE_S), nap("bench-tick", 0.01)
        )
        await stack.warm("bench-tick", value=None)  # the engine is up
        await stack.engine_idle(60)
        idle_engine, idle_nats = stack.rss("engine"), stack.rss("nats-server")
        async with s.profiled(tag, stack):
            t0 = time.perf_counter()
            await stack.start_many("bench-hold", count, lambda i: None)
            started = time.perf_counter() - t0
            await stack.engine_idle(600 + count / 50)
            await stack.drained(
                names.TIMER_STREAM, names.TIMER_CONSUMER, 600 + count / 50, acked=False
            )
        await asyncio.sleep(SETTLE_S)
        eng, nats = stack.rss("engine"), stack.rss("nats-server")
        late = await _probe_lateness(stack, probes)
    d_eng, d_nats = eng - idle_engine, nats - idle_nats
    p50, worst = statistics.median(late), max(late)
    s.figures.update(
        {
            f"{tag}_count": count,
            f"{tag}_engine_rss_mib": eng,
            f"{tag}_engine_over_idle_mib": d_eng,
            f"{tag}_nats_rss_mib": nats,
            f"{tag}_nats_over_idle_mib": d_nats,
            f"{tag}_late_p50_ms": p50,
            f"{tag}_late_max_ms": worst,
        }
    )
    s.say(
        f"dagnats {count} sleeping runs held: engine RSS {eng:.0f} MiB (+{d_eng:.0f} over "
        f"idle, {d_eng * 1024 / count:.1f} KiB/run), nats-server RSS {nats:.0f} MiB "
        f"(+{d_nats:.0f}, {d_nats * 1024 / count:.1f} KiB/run); {_start_rate(count, started)}"
    )
    verdict = "within" if worst <= LATE_LIMIT_MS else "OVER"
    s.say(
        f"  a 5 s sleep beside them fires late by p50 {p50:.1f} ms, max {worst:.1f} ms "
        f"({probes} probes; {verdict} the {LATE_LIMIT_MS:.0f} ms limit)"
    )


async def restart(s: Session, count: int) -> None:
    fl = await s.floor_before("restart")
    bound = 600 + count / 20
    async with Stack.open(uvloop=s.uvloop, roles=("engine", "api")) as stack:
        await stack.register(linear("bench-1", 1), nap("bench-tick", 0.01))
        await stack.warm("bench-tick", value=None)  # the engine is up
        handles = await stack.start_many("bench-1", count)
        await stack.engine_idle(bound)  # every run has dispatched its task
        rss_before = stack.rss("engine")
        await stack.kill("engine")
        # With the engine down, the worker ends every task: the history holds one
        # unapplied completion per run when the new engine starts, with a cold cache.
        await stack.spawn("worker")
        await stack.stream_empty(names.TASK_STREAM, bound)
        _backlog, delivered = await stack.engine_backlog()
        sub, ended = await stack.watch_ended()
        t0 = time.perf_counter()
        await stack.spawn("engine")
        try:
            pulled, ready = await stack.engine_progress(delivered, t0, ended, READY_LIMIT_S * 10)
        finally:
            await sub.unsubscribe()
        async with s.profiled("restart", stack, roles=("engine",)):
            await stack.wait_all(handles, bound)
        done = time.perf_counter() - t0
    rate = count / (done - ready)
    ratio = rate / fl.steps_per_s
    s.figures.update(
        restart_runs=count,
        restart_pulling_s=pulled,
        restart_ready_s=ready,
        restart_all_s=done,
        restart_progress_steps_per_s=rate,
        restart_ratio=ratio,
    )
    verdict = "within" if ready <= READY_LIMIT_S else "OVER"
    s.say(
        f"dagnats cold engine restart with {count} active runs (engine RSS before the kill "
        f"{rss_before:.0f} MiB): pulls events {pulled:.2f} s after its process starts, "
        f"applies them {ready:.2f} s after ({verdict} the {READY_LIMIT_S:.0f} s limit)"
    )
    s.say(
        f"  all {count} runs progressed (their {count} completions applied) {done:.2f} s "
        f"after it: {rate:.0f} events/s from the first ({ratio:.2f}x floor throughput)"
    )


async def rss(s: Session, count: int) -> None:
    fl = await s.floor_before("rss")
    async with Stack.open(uvloop=s.uvloop) as stack:
        await stack.register(linear("bench-3", 3))
        await stack.warm("bench-3")
        await stack.engine_idle(60)
        await asyncio.sleep(SETTLE_S)
        idle = stack.rss("engine")
        async with s.profiled("rss", stack):
            t0 = time.perf_counter()
            await stack.run_many("bench-3", count, RSS_IN_FLIGHT, 600 + count / 20)
            elapsed = time.perf_counter() - t0
        await stack.engine_idle(120)
        await asyncio.sleep(SETTLE_S)
        after = stack.rss("engine")
    s.figures.update(
        rss_runs=count, rss_idle_mib=idle, rss_after_mib=after, rss_over_idle_mib=after - idle
    )
    rate = count * 3 / elapsed
    s.say(
        f"dagnats engine RSS after {count} finished 3-step runs: {after:.0f} MiB, "
        f"+{after - idle:.1f} MiB over idle ({idle:.0f} MiB); they ran at "
        f"{rate:.0f} steps/s ({rate / fl.steps_per_s:.2f}x floor throughput)"
    )
