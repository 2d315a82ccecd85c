"""A bounded webhook load: ``python -m benchmarks.webhooks [--requests 2000] [--concurrency 32]``.

One nats-server (temporary store); ``dagnats serve --nats-url`` in a subprocess (engine, API,
trigger service, HTTP on a free port); this process sends signed ``POST /hooks/bench``
requests with httpx, ``--concurrency`` at a time, ``--requests`` in all, and reports
requests/s and latency percentiles of the 202 answers (each is one run's start, published to
JetStream). The workflow is a single ``respond`` step, so every run also completes in the
engine while the load goes on, without a worker. The floor is ``GET /health`` on the same
server with the same concurrency: the HTTP stack alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from dagnats.client import Client
from dagnats.server import EmbeddedNats

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 512


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1e3


async def _load(
    send: Callable[[], Awaitable[httpx.Response]], requests: int, concurrency: int, status: int
) -> dict[str, float]:
    latencies: list[float] = []
    queue = iter(range(requests))

    async def lane() -> None:
        for _ in queue:
            t0 = time.perf_counter()
            resp = await send()
            latencies.append(time.perf_counter() - t0)
            if resp.status_code != status:
                raise RuntimeError(f"unexpected {resp.status_code}: {resp.text[:200]}")

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return {
        "rps": requests / wall,
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": max(latencies) * 1e3,
    }


async def _wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.2)  # a subprocess coming up: nothing to subscribe to
    raise TimeoutError(f"serve did not become ready on {url}")


async def main(requests: int, concurrency: int) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with EmbeddedNats(port=0) as server:
        port = _free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dagnats",
            "serve",
            "--nats-url",
            server.url,
            "--http-port",
            str(port),
            "--log-level",
            "warning",
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            await _wait_http(url)
            async with await Client.connect(server.url) as client:
                await client.register(
                    {"name": "bench-hook", "steps": [{"id": "ack", "type": "respond"}]}
                )
                await client.create_trigger(
                    {
                        "id": "bench",
                        "workflow_id": "bench-hook",
                        "webhook": {"path": "/hooks/bench", "secret": SECRET},
                    }
                )
            body = json.dumps({"event": "push", "ref": "main"}).encode()
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
                await _load(lambda: http.get("/health"), 200, concurrency, 200)  # warm-up
                floor = await _load(lambda: http.get("/health"), requests, concurrency, 200)
                hooks = await _load(
                    lambda: http.post(
                        "/hooks/bench", content=body, headers={"X-Signature-256": sig}
                    ),
                    requests,
                    concurrency,
                    202,
                )
        finally:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
    return {"health_floor": floor, "webhook": hooks}


def _report(out: dict[str, dict[str, float]], requests: int, concurrency: int) -> None:
    floor, hooks = out["health_floor"], out["webhook"]
    print(f"bounded webhook load: {requests} requests, {concurrency} at a time")
    for name, r in out.items():
        print(
            f"  {name:13s} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.2f} ms   "
            f"p99 {r['p99_ms']:6.2f} ms   max {r['max_ms']:7.2f} ms"
        )
    print(
        f"  webhook / floor: {hooks['rps'] / floor['rps']:.2f} of the throughput, "
        f"p99 x{hooks['p99_ms'] / floor['p99_ms']:.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if not (1 <= args.requests <= MAX_REQUESTS and 1 <= args.concurrency <= MAX_CONCURRENCY):
        parser.error(f"--requests 1..{MAX_REQUESTS}, --concurrency 1..{MAX_CONCURRENCY}")
    result = asyncio.run(main(args.requests, args.concurrency))
    _report(result, args.requests, args.concurrency)
