"""Run all benchmarks: ``python -m benchmarks.run [--samples 300] [--runs 1000]``.

One nats-server (temporary store), the engine + API in one process, the worker in another,
this process as the client. The raw-NATS floor is measured first on the same server, and
every dagnats figure is printed with its ratio to that floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import benchmarks._traced  # noqa: F401  (first: sets the tracing mode)
from benchmarks.floor import measure_floor
from benchmarks.workload import linear
from dagnats._nats.connection import connect as connect_nats
from dagnats.client import Client
from dagnats.server import EmbeddedNats

ROOT = Path(__file__).resolve().parent.parent


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1e3


async def _latency(client: Client, wf_name: str, samples: int) -> list[float]:
    lat = []
    for i in range(samples):
        t0 = time.perf_counter()
        run = await client.start(wf_name, i)
        await run.result(timeout=30)
        lat.append(time.perf_counter() - t0)
    return lat


async def _throughput(client: Client, wf_name: str, runs: int) -> float:
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(200)  # bound concurrent start requests, not runs in flight

    async def one(i: int) -> None:
        async with sem:
            handle = await client.start(wf_name, i)
        await handle.result(timeout=300)

    await asyncio.gather(*(one(i) for i in range(runs)))
    return time.perf_counter() - t0


async def main(samples: int, runs: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with EmbeddedNats(port=0) as server:
        url = server.url
        nc_a = await connect_nats(url)
        nc_b = await connect_nats(url)
        floor = await measure_floor(nc_b, nc_a, samples=samples, concurrent=runs * 3)
        await nc_b.close()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks._serve_engine", url, env=env
            ),
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks._worker", url, env=env
            ),
        ]
        try:
            client = Client(nc_a, timeout_s=30)
            for name, steps in (("bench-1", 1), ("bench-3", 3)):
                for _ in range(100):  # the engine process may still be starting
                    try:
                        await client.register(linear(name, steps))
                        break
                    except Exception:  # noqa: BLE001 - the engine may still be starting: retry
                        await asyncio.sleep(0.1)
            # Warm-up: also proves engine and worker are up.
            for name in ("bench-1", "bench-3"):
                run = await client.start(name, 0)
                await run.result(timeout=60)
            lat1 = await _latency(client, "bench-1", samples)
            lat3 = await _latency(client, "bench-3", samples)
            elapsed = await _throughput(client, "bench-3", runs)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    await asyncio.wait_for(p.wait(), 20)
                except TimeoutError:
                    p.kill()
            await nc_a.close()
    steps_per_s = runs * 3 / elapsed
    results = {
        "floor_step_p50_ms": floor["p50_ms"],
        "floor_step_p99_ms": floor["p99_ms"],
        "floor_steps_per_s": floor["steps_per_s"],
        "run1_p50_ms": _pct(lat1, 0.5),
        "run1_p99_ms": _pct(lat1, 0.99),
        "run3_p50_ms": _pct(lat3, 0.5),
        "run3_p99_ms": _pct(lat3, 0.99),
        "throughput_runs": runs,
        "throughput_s": elapsed,
        "throughput_steps_per_s": steps_per_s,
    }
    f50 = floor["p50_ms"]
    print(
        f"raw NATS floor, one step:   p50 {f50:.3f} ms  p99 {floor['p99_ms']:.3f} ms  "
        f"{floor['steps_per_s']:.0f} steps/s"
    )
    for label, k, steps in (("1-step run", "run1", 1), ("3-step run", "run3", 3)):
        p50, p99 = results[f"{k}_p50_ms"], results[f"{k}_p99_ms"]
        print(
            f"dagnats {label}:         p50 {p50:.2f} ms ({p50 / (f50 * steps):.1f}x floor x "
            f"{steps})  p99 {p99:.2f} ms"
        )
    print(
        f"dagnats {runs} concurrent 3-step runs: {elapsed:.2f} s, {steps_per_s:.0f} steps/s "
        f"({steps_per_s / floor['steps_per_s']:.2f}x floor)"
    )
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    out = asyncio.run(main(args.samples, args.runs))
    if args.json:
        print(json.dumps(out, indent=2))
