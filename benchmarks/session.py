"""What one benchmark run carries: the floor, the figures, the printed lines, the profiler."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from benchmarks.floor import measure_floor
from benchmarks.profile import Profiler
from benchmarks.stack import Stack, cpu_s
from dagnats._nats.connection import connect as connect_nats
from dagnats.server import EmbeddedNats


@dataclass(frozen=True)
class Floor:
    """The raw-NATS floor for one step, measured in this run (benchmarks/floor.py)."""

    p50_ms: float
    p99_ms: float
    steps_per_s: float
    client_cpu_us_one: float = 0.0
    """CPU per step of the floor's process (its worker and its engine side) one at a time."""
    client_cpu_us_many: float = 0.0
    """The same while ``floor_concurrent`` steps are in flight."""
    server_cpu_us_one: float = 0.0
    """nats-server's CPU per step, one at a time."""
    server_cpu_us_many: float = 0.0


async def measure(samples: int, concurrent: int) -> Floor:
    """The floor on a nats-server of its own, before any dagnats process runs."""
    async with EmbeddedNats(port=0) as server:
        engine_nc = await connect_nats(server.url)
        worker_nc = await connect_nats(server.url)
        try:
            got = await measure_floor(
                worker_nc,
                engine_nc,
                samples=samples,
                concurrent=concurrent,
                server_cpu_s=lambda: cpu_s(server.pid),
            )
        finally:
            await worker_nc.close()
            await engine_nc.close()
    return Floor(**got)


@dataclass
class Session:
    """``floor`` is measured at the start; each workload measures its own just before it
    runs (``floor_before``), since a shared machine's load moves between workloads."""

    uvloop: bool
    floor: Floor
    profiler: Profiler | None = None
    floor_samples: int = 300
    floor_concurrent: int = 3000
    round: int = 1
    figures: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    floors: dict[str, Floor] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    """Workloads that raised, and why (the run goes on; its exit status is 1)."""

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def floor_of(self, workload: str) -> Floor:
        return self.floors.get(workload, self.floor)

    async def floor_before(self, workload: str) -> Floor:
        fl = await measure(self.floor_samples, self.floor_concurrent)
        self.floors[workload] = fl
        self.figures[f"{workload}_floor_p50_ms"] = fl.p50_ms
        self.figures[f"{workload}_floor_steps_per_s"] = fl.steps_per_s
        self.figures[f"{workload}_floor_client_cpu_us_one"] = fl.client_cpu_us_one
        self.figures[f"{workload}_floor_client_cpu_us_many"] = fl.client_cpu_us_many
        self.say(
            f"raw NATS floor before {workload}:  p50 {fl.p50_ms:.3f} ms  p99 {fl.p99_ms:.3f} ms  "
            f"{fl.steps_per_s:.0f} steps/s"
        )
        self.say(
            f"  its CPU per step: client {fl.client_cpu_us_one:.0f} us one at a time, "
            f"{fl.client_cpu_us_many:.0f} us concurrent; nats-server "
            f"{fl.server_cpu_us_one:.0f} / {fl.server_cpu_us_many:.0f} us"
        )
        return fl

    @contextlib.asynccontextmanager
    async def profiled(
        self, workload: str, stack: Stack, roles: Sequence[str] = ("engine", "worker")
    ) -> AsyncIterator[None]:
        """Record ``roles`` with py-spy while the block runs (with ``--profile``)."""
        if self.profiler is None:
            yield
            return
        recs = await self.profiler.start(workload, {r: stack.pid(r) for r in roles})
        try:
            yield
        finally:
            for line in await self.profiler.stop(recs):
                self.say(line)
