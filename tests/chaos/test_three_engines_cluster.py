"""Methodology: issue 12's "done when" run. A real 3-node JetStream cluster on loopback
(tests.integration.cluster), every stream and bucket R3, three ``dagnats engine`` processes
sharing the history partitions, ``dagnats api`` and ``dagnats worker``, all given the three
URLs. ``RUNS`` x scale three-step runs start at a steady pace over ``LOAD_S``; meanwhile:

1. one engine is SIGKILLed (its partitions' leases lapse and the two others take them);
2. once runs progress again, it is started again and the three share the partitions anew;
3. the node that leads the history stream is SIGKILLed, and started again on its store
   once runs progress again.

Recovery after each kill is the time from the kill until a fresh run *of every partition*
has completed (one probe run per partition, started right after the kill): the moment runs
progress again everywhere, not only on the partitions the fault missed. Every acknowledged
run must complete with 3, none lost or stuck, no event twice in a run's history; repeated
handler calls are counted. Recovery is printed and asserted only loosely (``RECOVERY_S``):
under a loaded CI machine timings vary; the issue's 10 s is read off the printed figures.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

import dagnats
from dagnats._nats.types import NatsClient
from dagnats.protocol.partitions import DEFAULT_PARTITIONS, LEASE_TTL_S, partition_of
from tests.chaos.cluster_parts import cluster_deployment, history_leader
from tests.chaos.harness import Figures, audit, explain, probe, scale, start_load
from tests.integration.test_engine_processes import wait_view

RUNS = 150  # per scale: 1,050 at --chaos-scale 7
LOAD_S = 30.0  # the load's length: past both kills and their recoveries
UP_S = 2.0  # load before the first kill, and between a recovery and the next kill
START_S = 60.0  # processes starting on a loaded 2-core machine
RECOVERY_S = 30.0  # loose bound; the figures printed are what to read
SETTLE_S = 90.0


def probe_ids(tag: str, partitions: int = DEFAULT_PARTITIONS) -> list[str]:
    """One run id per partition (``probe-<tag>-<n>``, the first n landing in each)."""
    ids: dict[int, str] = {}
    n = 0
    while len(ids) < partitions:
        run_id = f"probe-{tag}-{n}"
        ids.setdefault(partition_of(run_id, partitions), run_id)
        n += 1
    return [ids[p] for p in range(partitions)]


async def recovery(client: dagnats.Client, wf: dagnats.Workflow, tag: str, since: float) -> float:
    """Seconds from ``since`` until a fresh run of every partition has completed."""
    times = await asyncio.gather(
        *(probe(client, wf, r, since, timeout_s=SETTLE_S) for r in probe_ids(tag))
    )
    print(f"\n{tag}: first partition back {min(times):.2f}s, all {max(times):.2f}s")
    return max(times)


async def handover(nc: NatsClient, since: float) -> float:
    """Seconds from ``since`` (an engine's kill) until the two others hold every partition."""
    await wait_view(nc, 2, START_S)
    return time.monotonic() - since


async def longest_stall(
    client: dagnats.Client, run_ids: list[str], windows: list[tuple[float, float]]
) -> list[float]:
    """For each (from, to) window of wall-clock time, the longest time in it during which
    some partition completed none of ``run_ids`` (from the snapshots' ``finished_at``):
    a second stall after a probe got through counts too. With few runs per partition
    (CI scale) the load's own spacing makes it an upper bound."""
    gate = asyncio.Semaphore(32)

    async def ended(run_id: str) -> tuple[int, float | None]:
        async with gate:
            at = (await client.get_run(run_id)).finished_at
        return partition_of(run_id, DEFAULT_PARTITIONS), at.timestamp() if at else None

    ends = [e for e in await asyncio.gather(*(ended(r) for r in run_ids)) if e[1] is not None]
    stalls = []
    for start, stop in windows:
        gaps = [0.0]
        for part in range(DEFAULT_PARTITIONS):
            points = sorted(t for q, t in ends if q == part and t is not None and start < t < stop)
            points = [start, *points, stop]
            gaps.append(max(b - a for a, b in itertools.pairwise(points)))
        stalls.append(max(gaps))
    return stalls


@pytest.mark.timeout(120 + 60 * scale())
async def test_three_engines_on_a_cluster_survive_an_engine_and_a_leader_kill(
    ledger: Path, figures: Figures
) -> None:
    started = time.monotonic()
    async with cluster_deployment(ledger, engines=3) as dep:
        cluster, client, admin, engine = dep.cluster, dep.client, dep.admin, dep.engines[0]
        await wait_view(admin, 3, START_S)
        wf, load = await start_load(
            client, rate=RUNS * scale() / LOAD_S, limit=RUNS * scale(), timeout_s=START_S
        )

        await asyncio.sleep(UP_S)
        await engine.kill()
        kills, killed = [time.time()], time.monotonic()
        figures.kills += 1
        held, back = await asyncio.gather(
            handover(admin, killed), recovery(client, wf, "engine-kill", killed)
        )
        print(f"engine-kill: its partitions held by the two others after {held:.2f}s")
        figures.recovery_s.append(back)
        await engine.start()
        await wait_view(admin, 3, START_S + 2 * LEASE_TTL_S)

        await asyncio.sleep(UP_S)
        node = await history_leader(admin)
        cluster.kill_node(node)
        kills.append(time.time())
        figures.kills += 1
        figures.recovery_s.append(await recovery(client, wf, "leader-kill", time.monotonic()))
        cluster.start_node(node)  # back on its store; it catches up as a follower
        await cluster.wait_ready()

        await load.finish(timeout_s=SETTLE_S * scale())
        kills.append(time.time())  # the end of the last window
        await audit(client, client.nc, figures, load.accepted, ledger=ledger, settle_s=SETTLE_S)
        stalls = await longest_stall(client, load.accepted, list(itertools.pairwise(kills)))
        print(f"longest partition stall after the engine kill, the leader kill: {stalls}")
        for line in await explain(client, client.nc, [*figures.lost, *figures.stuck][:20]):
            print(line)
    figures.seconds = time.monotonic() - started
    print(f"recovery after the engine kill, after the leader kill: {figures.recovery_s}")
    figures.check()
    assert max(figures.recovery_s) < RECOVERY_S, figures.recovery_s
