"""``engines2``: the throughput workload on a fresh stack with two engine processes.

The two engines share the history partitions (ADR 0013: 4 of 8 each); the figure is
printed next to the one-engine throughput of the same session when that ran too. On a
2-core machine the engines, the API, the worker and nats-server share the cores, so two
engines show what the partitioning costs or gains there, not a scale-out figure.
"""

from __future__ import annotations

import time

from benchmarks.session import Session
from benchmarks.stack import Stack
from benchmarks.steady import RUN_TIMEOUT_S
from benchmarks.workload import linear, nap


async def two_engines(s: Session, runs: int) -> None:
    fl = await s.floor_before("engines2")
    roles = ("engine", "engine2", "api", "worker")
    async with Stack.open(uvloop=s.uvloop, roles=roles) as stack:
        await stack.register(linear("bench-3", 3), nap("bench-tick", 0.01))
        await stack.warm("bench-3")
        t0 = time.perf_counter()
        handles = await stack.start_many("bench-3", runs)
        await stack.wait_all(handles, RUN_TIMEOUT_S * 5)
        elapsed = time.perf_counter() - t0
    rate = runs * 3 / elapsed
    ratio = rate / fl.steps_per_s
    s.figures.update(engines2_runs=runs, engines2_steps_per_s=rate, engines2_ratio=ratio)
    one = s.figures.get("throughput_steps_per_s")
    versus = f"; one engine: {one:.0f} steps/s" if isinstance(one, float) else ""
    s.say(
        f"dagnats {runs} concurrent 3-step runs on two engines: {elapsed:.2f} s, "
        f"{rate:.0f} steps/s ({ratio:.2f}x floor throughput{versus})"
    )
