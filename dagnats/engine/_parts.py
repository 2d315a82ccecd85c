"""What a started engine works with: stores, executor and services, opened together.

The engine's collaborators need NATS lookups (KV buckets, the definition watch) before they
can be built, so they are built by :func:`open_parts` in ``Engine.start()`` and held in one
:class:`EngineParts`: an engine is either not started (no parts) or has all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dagnats import protocol
from dagnats._nats.consumers import ensure_consumer
from dagnats._nats.feed import PullFeed
from dagnats._nats.payloads import Payloads
from dagnats._nats.stores import DefinitionStore, RunStore
from dagnats._nats.types import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    JetStreamContext,
    KeyValue,
    NatsClient,
)
from dagnats.engine.advisories import AdvisoryWatcher
from dagnats.engine.correlator import Correlator
from dagnats.engine.ending import RunEnding
from dagnats.engine.executor import Executor
from dagnats.engine.timers import TimerClock, TimerService
from dagnats.protocol import partitions

# Applying an event takes milliseconds and a repeat is a no-op, so a short ack wait only
# shortens how long a crashed engine's in-flight events wait for its successor: no longer
# than its leases take to lapse, so they are back when the partitions are taken over.
ENGINE_ACK_WAIT_S = partitions.LEASE_TTL_S

# The buckets the engine's collaborators read and write.
ENGINE_BUCKETS = (
    protocol.KV_WAITERS,
    protocol.KV_APPROVALS,
    protocol.KV_CHECKPOINTS,
    protocol.KV_CONCURRENCY,
    protocol.KV_RATE_LIMITS,
    protocol.KV_STICKY,
    protocol.KV_RUNS,
    protocol.KV_SCHEDULED,
)


@dataclass(frozen=True)
class EngineParts:
    """The collaborators of a started engine (built, not yet started)."""

    runs: RunStore
    defs: DefinitionStore
    kv: dict[str, KeyValue]
    executor: Executor
    payloads: Payloads
    timers: TimerService
    advisories: AdvisoryWatcher
    correlator: Correlator
    ending: RunEnding


async def ensure_partition_consumers(js: JetStreamContext, n: int) -> None:
    """One durable consumer per history partition (ADR 0013); idempotent."""
    for p in range(n):
        await ensure_consumer(
            js,
            protocol.HISTORY_STREAM,
            ConsumerConfig(
                durable_name=partitions.engine_consumer(p),
                filter_subject=partitions.partition_filter(p),
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ENGINE_ACK_WAIT_S,
                max_deliver=-1,
                max_ack_pending=50_000,
            ),
        )


def partition_feed(
    nc: NatsClient, p: int, max_inflight: int, may_pull: Callable[[], bool]
) -> PullFeed:
    return PullFeed(
        nc,
        protocol.HISTORY_STREAM,
        partitions.engine_consumer(p),
        max_inflight=max_inflight,
        may_pull=may_pull,
    )


async def open_parts(nc: NatsClient, *, clock: TimerClock | None = None) -> EngineParts:
    """Open the stores and buckets, build the collaborators."""
    js = nc.jetstream()
    runs = await RunStore.open(js)
    defs = await DefinitionStore.open(js)
    kv = {name: await js.key_value(name) for name in ENGINE_BUCKETS}
    executor = Executor(nc, js, defs, kv)
    correlator = Correlator(nc, kv[protocol.KV_WAITERS])
    # A newly registered waiter looks back over recent events (the correlator's job).
    executor.on_waiter = correlator.lookback
    return EngineParts(
        runs=runs,
        defs=defs,
        kv=kv,
        executor=executor,
        payloads=Payloads(js),
        timers=TimerService(nc, kv, clock=clock),
        advisories=AdvisoryWatcher(nc),
        correlator=correlator,
        ending=RunEnding(nc, runs, executor),
    )
