"""One benchmark stack: a nats-server, the engine, the API and the worker as processes.

The driver (this process) is the client. Each workload that leaves state behind (held
runs, a killed engine, a grown cache) gets a fresh stack, so no workload measures another's
leftovers. Every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from benchmarks import _loop
from dagnats import Client, RunHandle, Workflow
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.types import Msg, NatsClient, Subscription
from dagnats.protocol import names, partitions
from dagnats.server import EmbeddedNats

ROOT = Path(__file__).resolve().parent.parent
# role -> the module that runs it and its arguments after the NATS URL
ROLES: dict[str, tuple[str, ...]] = {
    "engine": ("benchmarks._serve_engine", "engine"),
    "engine2": ("benchmarks._serve_engine", "engine", "bench-engine-2"),  # a second engine
    "api": ("benchmarks._serve_engine", "api"),
    "worker": ("benchmarks._worker",),
}
STOP_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 60.0
START_CONCURRENCY = 200  # bounds concurrent start requests, not runs in flight
WAIT_CONCURRENCY = 1000  # bounds concurrent result() waits (each is a subscription)
POLL_S = 0.2
STALL_S = 60.0  # no run ending for this long while some are waited for: they are lost
FINE_POLL_S = 0.02  # where the poll's own step would show in the figure


def rss_mib(pid: int | None) -> float:
    """Resident set size of a live process, MiB (from /proc: Linux only)."""
    if pid is None:
        raise RuntimeError("no such process")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int | None) -> float:
    """User plus system CPU time a live process has used, seconds (from /proc: Linux only)."""
    if pid is None:
        raise RuntimeError("no such process")
    # The fields after the command name (which may hold spaces) are counted from its ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_env(uvloop: bool) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, _loop.ENV: "1" if uvloop else "0"}


class Stack:
    """Use as ``async with Stack.open(uvloop=...) as stack``."""

    def __init__(self, server: EmbeddedNats, nc: NatsClient, env: dict[str, str]) -> None:
        self.server = server
        self.nc = nc
        self.env = env
        self.client = Client(nc, timeout_s=30)
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        # The processes' output goes to files, kept (and named) only if the workload fails:
        # a struggling engine's retries would otherwise bury the figures.
        self.logs = Path(tempfile.mkdtemp(prefix="dagnats-bench-"))
        self._spawned = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, *, uvloop: bool, roles: Sequence[str] = ("engine", "api", "worker")
    ) -> AsyncIterator[Stack]:
        async with EmbeddedNats(port=0) as server:
            nc = await connect_nats(server.url)
            stack = cls(server, nc, child_env(uvloop))
            failed = True
            try:
                for role in roles:
                    await stack.spawn(role)
                yield stack
                failed = False
            finally:
                await stack.stop_all()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.close(), 10)
                if failed:
                    stack.keep_logs()
                else:
                    shutil.rmtree(stack.logs, ignore_errors=True)

    async def spawn(self, role: str) -> None:
        if role in self.procs:
            raise RuntimeError(f"the {role} is already running")
        self._spawned += 1
        with (self.logs / f"{self._spawned}-{role}.log").open("wb") as log:
            self.procs[role] = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", ROLES[role][0], self.server.url, *ROLES[role][1:]),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def keep_logs(self) -> None:
        print(f"the benchmark processes' logs are kept in {self.logs}:", file=sys.stderr)
        for path in sorted(self.logs.iterdir()):
            tail = path.read_text(errors="replace").splitlines()[-5:]
            print(f"  {path.name}:", *(f"    {line}" for line in tail), sep="\n", file=sys.stderr)

    def pid(self, role: str) -> int:
        proc = self.procs.get(role)
        if proc is None or proc.returncode is not None:
            raise RuntimeError(f"the {role} is not running")
        return proc.pid

    async def kill(self, role: str) -> None:
        """SIGKILL: a crash, nothing flushed or acked on the way out."""
        proc = self.procs.pop(role)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)

    async def stop_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.procs.clear()

    def _pid_of(self, role: str) -> int | None:
        """The pid of a role's process, nats-server's included."""
        return self.server.pid if role == "nats-server" else self.pid(role)

    def rss(self, role: str) -> float:
        return rss_mib(self._pid_of(role))

    def cpu_s(self, role: str) -> float:
        return cpu_s(self._pid_of(role))

    async def register(self, *workflows: Workflow) -> None:
        """Register, retrying while the API process is still starting (bounded)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        for wf in workflows:
            while True:
                try:
                    await self.client.register(wf)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)

    async def warm(self, *names_: str, value: Any = 0) -> None:
        """One run of each: also proves the engine and worker are up."""
        for name in names_:
            run = await self.client.start(name, value)
            await run.result(timeout=READY_TIMEOUT_S)

    async def start_many(
        self, name: str, count: int, value: Callable[[int], Any] = lambda i: i
    ) -> list[RunHandle]:
        sem = asyncio.Semaphore(START_CONCURRENCY)

        async def one(i: int) -> RunHandle:
            async with sem:
                return await self.client.start(name, value(i))

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def run_many(self, name: str, count: int, in_flight: int, timeout_s: float) -> None:
        """``count`` runs to their end, at most ``in_flight`` at a time (a steady load)."""
        sem = asyncio.Semaphore(in_flight)
        watch = _Progress(count, timeout_s)

        async def one(i: int) -> None:
            async with sem:
                run = await self.client.start(name, i)
                watch.started(run.run_id)
                await run.result(timeout=watch.left())
                watch.ended(run.run_id)

        await watch.wait([one(i) for i in range(count)])

    async def wait_all(self, handles: Sequence[RunHandle], timeout_s: float) -> None:
        """Every run's result, bounded as ``_Progress`` says."""
        sem = asyncio.Semaphore(WAIT_CONCURRENCY)
        watch = _Progress(len(handles), timeout_s)
        for h in handles:
            watch.started(h.run_id)

        async def one(h: RunHandle) -> None:
            async with sem:
                await h.result(timeout=watch.left())
            watch.ended(h.run_id)

        await watch.wait([one(h) for h in handles])

    async def drained(
        self, stream: str, consumer: str, timeout_s: float, *, acked: bool = True
    ) -> None:
        """Wait until ``consumer`` has delivered everything (and, with ``acked``, had it
        acked); polled, since no watch tells this."""
        js = self.nc.jetstream()
        deadline = time.monotonic() + timeout_s
        while True:
            info = await js.consumer_info(stream, consumer)
            if not info.num_pending and not (acked and info.num_ack_pending):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{consumer} still has {info.num_pending} pending and "
                    f"{info.num_ack_pending} unacked after {timeout_s:.0f} s"
                )
            await asyncio.sleep(POLL_S)

    async def stream_empty(self, stream: str, timeout_s: float) -> None:
        """Wait until a work-queue stream holds no message (polled)."""
        js = self.nc.jetstream()
        deadline = time.monotonic() + timeout_s
        while (left := (await js.stream_info(stream)).state.messages) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{stream} still holds {left} messages after {timeout_s:.0f} s")
            await asyncio.sleep(POLL_S)

    async def engine_consumers(self) -> list[str]:
        """The engine's consumers, one per history partition (ADR 0013)."""
        infos = await self.nc.jetstream().consumers_info(names.HISTORY_STREAM)
        prefix = partitions.ENGINE_CONSUMER_PREFIX
        return sorted(i.name for i in infos if i.name.startswith(prefix))

    async def engine_backlog(self) -> tuple[int, int]:
        """(history events the engine has not acked yet, over all its partition consumers;
        the furthest event delivered to it)."""
        js = self.nc.jetstream()
        left, delivered = 0, 0
        for consumer in await self.engine_consumers():
            info = await js.consumer_info(names.HISTORY_STREAM, consumer)
            left += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            last = info.delivered.stream_seq if info.delivered else 0
            delivered = max(delivered, int(last or 0))
        return left, delivered

    async def watch_ended(self) -> tuple[Subscription, asyncio.Future[float]]:
        """A future set to the ``perf_counter`` of the first run end the engine announces
        (``dagnats.done.*``), with its subscription (unsubscribe it when done)."""
        first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        async def on_done(_msg: Msg) -> None:
            if not first.done():
                first.set_result(time.perf_counter())

        sub = await self.nc.subscribe(names.done_subject("*"), cb=on_done)
        return sub, first

    async def engine_progress(
        self, delivered: int, since: float, ended: asyncio.Future[float], timeout_s: float
    ) -> tuple[float, float]:
        """Seconds from ``since`` (a ``perf_counter``) until the engine was delivered an
        event past ``delivered`` (it is pulling) and until it ended a run (``ended``, from
        :meth:`watch_ended`): the first backlogged event applied. (The consumers' backlog
        cannot tell: each event applied appends records to it as fast as it shrinks.)"""
        deadline = time.monotonic() + timeout_s
        pulled: float | None = None
        while not ended.done():
            _left, last = await self.engine_backlog()
            if pulled is None and last > delivered:
                pulled = time.perf_counter() - since
            if time.monotonic() > deadline:
                raise TimeoutError(f"the engine ended no run in {timeout_s:.0f} s")
            await asyncio.wait([ended], timeout=FINE_POLL_S)
        ready = ended.result() - since
        return (ready if pulled is None else min(pulled, ready)), ready

    async def engine_idle(self, timeout_s: float) -> None:
        """The engine has applied and acked every history event so far."""
        for consumer in await self.engine_consumers():
            await self.drained(names.HISTORY_STREAM, consumer, timeout_s)


class _Progress:
    """Waits for many runs: within ``timeout_s`` in all, and with no stretch of
    ``STALL_S`` in which none of them ended (a run the engine lost would otherwise hold
    the wait for the whole timeout). Either way the TimeoutError says how many runs did
    not end and names some."""

    def __init__(self, total: int, timeout_s: float) -> None:
        self.total = total
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.last = time.monotonic()
        self.pending: set[str] = set()
        self.ended_count = 0

    def left(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def started(self, run_id: str) -> None:
        self.pending.add(run_id)

    def ended(self, run_id: str) -> None:
        self.pending.discard(run_id)
        self.ended_count += 1
        self.last = time.monotonic()

    async def wait(self, waits: list[Coroutine[Any, Any, None]]) -> None:
        all_of = asyncio.gather(*waits)
        try:
            while not all_of.done():
                await asyncio.wait({all_of}, timeout=1.0)
                now = time.monotonic()
                if not all_of.done() and (now > self.deadline or now - self.last > STALL_S):
                    why = (
                        f"within {self.timeout_s:.0f} s"
                        if now > self.deadline
                        else f"and none ended for {STALL_S:.0f} s"
                    )
                    some = ", ".join(sorted(self.pending)[:3])
                    raise TimeoutError(
                        f"{self.total - self.ended_count} of {self.total} runs did not end "
                        f"{why} (e.g. {some})"
                    )
            all_of.result()
        finally:
            if not all_of.done():
                all_of.cancel()
                with contextlib.suppress(BaseException):
                    await all_of
