"""What every chaos test shares: real processes to kill, a run load, and the audit.

- :class:`Proc`: a ``python -m dagnats ...`` (or nats-server) child in its own process group,
  so a SIGKILL takes it and its children (``serve``'s nats-server) down at once, as an OOM
  kill of a container would.
- :class:`Load`: starts runs under ids the test chose (``idempotency_key`` = run id), each
  start retried through outages until the API acknowledges it, so every acknowledged run
  is one that must end.
- :func:`audit`: once the faults stop, waits (bounded) for every acknowledged run, then
  counts lost (acknowledged, yet neither snapshot nor history), stuck (not ended),
  duplicate state transitions (an event of the same type, step and attempt twice in a run's
  history: the engine's records and the inputs it applied) and repeated handler executions
  (the ledger the chaos worker writes: reported, not required to be 0: delivery is at
  least once, ADR 0014).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagnats
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.history import read_history
from dagnats._nats.types import NatsClient
from dagnats.protocol.events import Event
from tests.chaos.chaos_worker import LEDGER_ENV

ROOT = Path(__file__).resolve().parents[2]
SCALE_ENV = "DAGNATS_CHAOS_SCALE"
START_RETRY_S = 0.2  # between tries of a start while the API is down (nothing to watch)
SETTLE_S = 60.0  # how long the audit waits for the runs still going after the last fault


def scale() -> int:
    """The chaos multiplier (``--chaos-scale`` or ``DAGNATS_CHAOS_SCALE``; 1 in CI)."""
    raw = os.environ.get(SCALE_ENV, "1")
    value = int(raw)
    if value < 1:
        raise ValueError(f"{SCALE_ENV} must be an integer >= 1, got {raw!r}")
    return value


class Proc:
    """A child process in its own session; ``kill()`` SIGKILLs its whole group."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"dagnats-chaos-{os.getpid()}.log"

    @classmethod
    def dagnats(cls, *args: str, env: dict[str, str] | None = None) -> Proc:
        return cls([sys.executable, "-m", "dagnats", *args], env=env)

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )

    async def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)

    async def stop(self) -> None:
        """SIGTERM (a graceful stop), then SIGKILL after 15 s."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
            self.proc = None
        except TimeoutError:
            await self.kill()


def worker_proc(url: str, ledger: Path, attr: str = "worker") -> Proc:
    return Proc.dagnats(
        "worker",
        f"tests.chaos.chaos_worker:{attr}",
        "--nats-url",
        url,
        "--log-level",
        "warning",
        env={LEDGER_ENV: str(ledger)},
    )


def three_steps(name: str = "chaos") -> dagnats.Workflow:
    """a -> b -> c, each ``inc``: a run of input 0 ends with 3."""
    wf = dagnats.Workflow(name)
    a = wf.step("a", task="inc")
    b = wf.step("b", task="inc", depends_on=[a])
    wf.step("c", task="inc", depends_on=[b])
    return wf


async def client_for(url: str, timeout_s: float = 60.0) -> dagnats.Client:
    """A client that reconnects for ever, quickly (the test outlives every fault); its
    first connection is tried until ``timeout_s`` (the server may be starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            nc = await connect_nats(url, max_reconnect_attempts=-1, reconnect_time_wait_s=0.1)
            return dagnats.Client(nc, timeout_s=5.0, _owned=True)
        except dagnats.NatsUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(START_RETRY_S)  # a starting process announces nothing


async def start_until_accepted(
    client: dagnats.Client, wf: dagnats.Workflow, run_id: str, deadline: float
) -> None:
    """Start ``run_id`` (its own idempotency key) until the API acknowledges it."""
    while True:
        try:
            await client.start(wf, 0, run_id=run_id, idempotency_key=run_id)
            return
        except Exception:  # an outage is what this test is made of: try again
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(START_RETRY_S)


class Load:
    """Runs of ``wf`` started at ``rate`` per second in the background, until ``stop()``
    or ``limit`` runs (whichever comes first)."""

    def __init__(
        self, client: dagnats.Client, wf: dagnats.Workflow, *, rate: float, limit: int = 10_000
    ) -> None:
        self.client = client
        self.wf = wf
        self.rate = rate
        self.limit = limit
        self.accepted: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, prefix: str = "chaos") -> None:
        self._task = asyncio.create_task(self._run(prefix), name="chaos-load")

    async def _run(self, prefix: str) -> None:
        deadline = time.monotonic() + 300
        for i in range(self.limit):
            if self._stop.is_set():
                return
            run_id = f"{prefix}-{i:05d}"
            await start_until_accepted(self.client, self.wf, run_id, deadline)
            self.accepted.append(run_id)
            with contextlib.suppress(TimeoutError):  # the load's pace
                await asyncio.wait_for(self._stop.wait(), 1 / self.rate)

    async def stop(self, timeout_s: float = 120.0) -> None:
        """Stop starting runs; returns once the start under way is acknowledged."""
        self._stop.set()
        await self.finish(timeout_s)

    async def finish(self, timeout_s: float = 120.0) -> None:
        """Wait until all ``limit`` runs are started (or ``stop()`` was called)."""
        assert self._task is not None
        await asyncio.wait_for(self._task, timeout_s)


async def probe(
    client: dagnats.Client,
    wf: dagnats.Workflow,
    run_id: str,
    since: float,
    *,
    timeout_s: float = 60.0,
) -> float:
    """Seconds from ``since`` (a kill) until a fresh run ``run_id`` has completed."""
    await start_until_accepted(client, wf, run_id, time.monotonic() + timeout_s)
    assert await client.run(run_id).result(timeout=timeout_s) == 3
    return time.monotonic() - since


async def start_load(
    client: dagnats.Client, *, rate: float, limit: int = 10_000, timeout_s: float = 60.0
) -> tuple[dagnats.Workflow, Load]:
    """Once a first probe run has completed (everything is up), a :class:`Load` of
    :func:`three_steps` runs under way; returns the workflow and the load."""
    wf = three_steps()
    await probe(client, wf, "probe-first", time.monotonic(), timeout_s=timeout_s)
    load = Load(client, wf, rate=rate, limit=limit)
    load.start()
    return wf, load


@dataclass
class Figures:
    """What a chaos test reports (and asserts on)."""

    name: str
    runs: int = 0
    kills: int = 0
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # ended, but not with the expected output
    duplicates: list[str] = field(default_factory=list)
    repeated_handlers: int = 0
    handler_calls: int = 0
    recovery_s: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        rec = (
            f"recovery max {max(self.recovery_s):.2f}s mean "
            f"{sum(self.recovery_s) / len(self.recovery_s):.2f}s"
            if self.recovery_s
            else "recovery n/a"
        )
        return (
            f"{self.name}: runs={self.runs} kills={self.kills} lost={len(self.lost)} "
            f"stuck={len(self.stuck)} wrong={len(self.wrong)} "
            f"duplicates={len(self.duplicates)} handler_calls={self.handler_calls} "
            f"repeated_handlers={self.repeated_handlers} {rec} ({self.seconds:.1f}s)"
        )

    def check(self) -> None:
        print(f"\nCHAOS {self.line()}")
        assert not self.lost, f"lost runs: {self.lost[:10]}"
        assert not self.stuck, f"stuck runs: {self.stuck[:10]}"
        assert not self.wrong, f"runs with a wrong outcome: {self.wrong[:10]}"
        assert not self.duplicates, f"duplicate transitions: {self.duplicates[:10]}"


async def _outcome(client: dagnats.Client, run_id: str, expected: object, deadline: float) -> str:
    """'ok', 'wrong', 'stuck' or 'lost' for one acknowledged run."""
    try:
        output = await client.run(run_id).result(timeout=max(0.1, deadline - time.monotonic()))
    except dagnats.RunNotFoundError:
        return "lost"
    except dagnats.RunError:
        return "wrong"
    except TimeoutError:
        return "stuck"
    return "ok" if output == expected else "wrong"


def transitions(history: Sequence[Event]) -> list[str]:
    """Events of one run's history seen more than once (same type, step, attempt,
    iteration and map item): each is one state transition, applied or recorded once."""
    seen = Counter((e.type, e.step_id, e.attempt, e.iteration, e.item) for e in history)
    return [f"{k[0]}/{k[1]}#{k[2]} x{n}" for k, n in seen.items() if n > 1]


async def audit(
    client: dagnats.Client,
    nc: NatsClient,
    figures: Figures,
    run_ids: Sequence[str],
    *,
    expected: object = 3,
    ledger: Path | None = None,
    settle_s: float = SETTLE_S,
) -> None:
    """Fill ``figures`` for ``run_ids`` (see the module); waits at most ``settle_s``."""
    deadline = time.monotonic() + settle_s
    gate = asyncio.Semaphore(64)  # bounded subscriptions at once

    async def one(run_id: str) -> tuple[str, str]:
        async with gate:
            return run_id, await _outcome(client, run_id, expected, deadline)

    outcomes = await asyncio.gather(*(one(r) for r in run_ids))
    figures.runs = len(run_ids)
    for run_id, outcome in outcomes:
        if outcome != "ok":
            getattr(figures, outcome).append(run_id)
    for run_id in run_ids:
        dup = transitions(await read_history(nc, run_id))
        figures.duplicates.extend(f"{run_id}: {d}" for d in dup)
    if ledger is not None:
        calls = ledger_calls(ledger)
        figures.handler_calls = sum(calls.values())
        figures.repeated_handlers = sum(n - 1 for n in calls.values() if n > 1)


def ledger_calls(ledger: Path) -> Counter[tuple[str, str, str]]:
    """Handler calls per (run, step, attempt) from the chaos worker's ledger."""
    calls: Counter[tuple[str, str, str]] = Counter()
    if not ledger.exists():
        return calls
    for line in ledger.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            calls[(parts[0], parts[1], parts[2])] += 1
    return calls


async def explain(client: dagnats.Client, nc: NatsClient, run_ids: Sequence[str]) -> list[str]:
    """One line per run: its snapshot's status and steps, then its history (type/step#attempt),
    for the report of a lost or stuck run."""
    lines = []
    for run_id in run_ids:
        try:
            state = await client.get_run(run_id)
            steps = " ".join(f"{k}={v.status}#{v.attempts}" for k, v in state.steps.items())
            snap = f"{state.status} last_seq={state.last_seq} {steps}"
        except Exception as exc:  # noqa: BLE001 - a lost run has no snapshot: say so
            snap = f"no snapshot ({type(exc).__name__})"
        events = await read_history(nc, run_id)
        trail = " ".join(f"{e.type}/{e.step_id}#{e.attempt}" for e in events)
        lines.append(f"{run_id}: {snap} | history: {trail or '(none)'}")
    return lines
