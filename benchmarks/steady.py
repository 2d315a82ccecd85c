"""Workloads on one shared stack (they leave no active runs behind).

- ``latency``: 1-step and 3-step runs one after another: p50/p99, ratio to floor × steps;
- ``throughput``: many concurrent 3-step runs: steps/s, ratio to the floor's steps/s;
- ``seq40``: a 40-step chain, one run at a time: median, ratio to floor × 40;
- ``map``: one run mapping ``bench_step`` over N items: time, items/s, ratio to the floor's
  steps/s (each item is one task through the worker, like one floor step).
"""

from __future__ import annotations

import statistics
import time

from benchmarks import budget
from benchmarks.session import Session
from benchmarks.stack import Stack
from benchmarks.workload import fan_out, linear
from dagnats import Client

RUN_TIMEOUT_S = 120.0
MAP_TIMEOUT_S = 900.0


def pct(xs: list[float], p: float) -> float:
    """The ``p`` quantile of ``xs`` seconds, in ms."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1e3


async def _one_by_one(client: Client, name: str, samples: int) -> list[float]:
    lat = []
    for i in range(samples):
        t0 = time.perf_counter()
        run = await client.start(name, i)
        await run.result(timeout=RUN_TIMEOUT_S)
        lat.append(time.perf_counter() - t0)
    return lat


async def prepare(stack: Stack, map_items: int) -> None:
    await stack.register(
        linear("bench-1", 1),
        linear("bench-3", 3),
        linear("bench-40", 40),
        fan_out("bench-map", map_items),
    )
    await stack.warm("bench-1", "bench-3", "bench-40")


async def latency(s: Session, stack: Stack, samples: int) -> None:
    fl = await s.floor_before("latency")
    f50 = fl.p50_ms
    async with s.profiled("latency", stack):
        for label, steps in (("1-step run", 1), ("3-step run", 3)):
            meter = budget.CpuMeter(stack)
            lat = await _one_by_one(stack.client, f"bench-{steps}", samples)
            used = meter.per(samples)  # per run
            p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
            s.figures[f"run{steps}_p50_ms"] = p50
            s.figures[f"run{steps}_p99_ms"] = p99
            s.figures[f"run{steps}_p50_ratio"] = p50 / (f50 * steps)
            s.say(
                f"dagnats {label}:  p50 {p50:.2f} ms ({p50 / (f50 * steps):.2f}x floor x "
                f"{steps})  p99 {p99:.2f} ms  [{samples} runs]"
            )
            if steps == 3:
                _say_budget(
                    s,
                    "run3",
                    budget.sequential(fl, budget.RUN3_P50_RATIO, 3, used),
                    budget.RUN3_P50_RATIO,
                    "run",
                    used,
                )


async def throughput(s: Session, stack: Stack, runs: int) -> None:
    fl = await s.floor_before("throughput")
    async with s.profiled("throughput", stack):
        meter = budget.CpuMeter(stack)
        t0 = time.perf_counter()
        handles = await stack.start_many("bench-3", runs)
        await stack.wait_all(handles, RUN_TIMEOUT_S + runs / 10)
        elapsed = time.perf_counter() - t0
        # CPU per step of each process: steadier than the rate on a machine whose speed
        # moves (the figure to compare a change by; the rate is the one issue 10 targets).
        per_step = meter.per(runs * 3)
    rate = runs * 3 / elapsed
    ratio = rate / fl.steps_per_s
    s.figures.update(
        throughput_runs=runs,
        throughput_s=elapsed,
        throughput_steps_per_s=rate,
        throughput_ratio=ratio,
        **{f"throughput_{r.replace('-', '_')}_cpu_us_per_step": v for r, v in per_step.items()},
    )
    s.say(
        f"dagnats {runs} concurrent 3-step runs: {elapsed:.2f} s, {rate:.0f} steps/s "
        f"({ratio:.2f}x floor throughput)"
    )
    s.say(
        "  CPU per step while they ran: "
        + ", ".join(f"{r} {v:.0f} us" for r, v in per_step.items())
    )
    ratio_goal = budget.THROUGHPUT_RATIO
    _say_budget(
        s, "throughput", budget.concurrent(fl, ratio_goal, per_step), ratio_goal, "step", per_step
    )


async def seq40(s: Session, stack: Stack, samples: int) -> None:
    fl = await s.floor_before("seq40")
    async with s.profiled("seq40", stack):
        meter = budget.CpuMeter(stack)
        lat = await _one_by_one(stack.client, "bench-40", samples)
        used = meter.per(samples * 40)  # per step
    median = statistics.median(lat) * 1e3
    ratio = median / (fl.p50_ms * 40)
    s.figures.update(seq40_median_ms=median, seq40_ratio=ratio)
    s.say(
        f"dagnats 40 sequential steps:  median {median:.1f} ms ({ratio:.2f}x floor x 40), "
        f"{median / 40:.2f} ms per step  [{samples} runs]"
    )
    goal = budget.SEQ40_RATIO
    _say_budget(s, "seq40", budget.sequential(fl, goal, 1, used), goal, "step", used)


def _say_budget(
    s: Session, key: str, b: budget.Budget, ratio: float, unit: str, used: dict[str, float]
) -> None:
    s.figures[f"{key}_cpu_allowed_us"] = b.allowed_us
    s.figures[f"{key}_cpu_used_us"] = b.used_us
    s.figures[f"{key}_cpu_nats_ops_us"] = b.nats_ops_us
    if b.each_allowed_us is not None:
        s.figures[f"{key}_cpu_each_allowed_us"] = b.each_allowed_us
        s.figures[f"{key}_cpu_each_used_us"] = b.each_used_us
    s.say(budget.describe(b, ratio, unit, used))


async def fan(s: Session, stack: Stack, items: int) -> None:
    fl = await s.floor_before("map")
    async with s.profiled("map", stack):
        t0 = time.perf_counter()
        run = await stack.client.start("bench-map", items)
        out = await run.result(timeout=MAP_TIMEOUT_S)
        elapsed = time.perf_counter() - t0
    if not isinstance(out, list) or len(out) != items:
        raise RuntimeError(f"the map returned {type(out).__name__}, not {items} outputs")
    rate = items / elapsed
    ratio = rate / fl.steps_per_s
    s.figures.update(map_items=items, map_s=elapsed, map_items_per_s=rate, map_ratio=ratio)
    s.say(
        f"dagnats map of {items} items:  {elapsed:.2f} s, {rate:.0f} items/s "
        f"({ratio:.2f}x floor throughput)"
    )
