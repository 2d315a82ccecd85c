"""What a started engine works with: stores, executor, feeds and services, opened together.

The engine's collaborators need NATS lookups (KV buckets, the definition watch) before they
can be built, so they are built by :func:`open_parts` in ``Engine.start()`` and held in one
:class:`EngineParts`: an engine is either not started (no parts) or has all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagnats import protocol
from dagnats._nats.consumers import ensure_consumer
from dagnats._nats.feed import PullFeed
from dagnats._nats.payloads import Payloads
from dagnats._nats.stores import DefinitionStore, RunStore
from dagnats._nats.types import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValue, NatsClient
from dagnats.engine.advisories import AdvisoryWatcher
from dagnats.engine.correlator import Correlator
from dagnats.engine.ending import RunEnding
from dagnats.engine.executor import Executor
from dagnats.engine.timers import TimerClock, TimerService

# Applying an event takes milliseconds and a repeat is a no-op, so a short ack wait only
# shortens how long a crashed engine's in-flight events wait for its successor.
ENGINE_ACK_WAIT_S = 10.0

# The buckets the engine's collaborators read and write.
ENGINE_BUCKETS = (
    protocol.KV_WAITERS,
    protocol.KV_APPROVALS,
    protocol.KV_CHECKPOINTS,
    protocol.KV_CONCURRENCY,
    protocol.KV_RATE_LIMITS,
    protocol.KV_RUNS,
)


@dataclass(frozen=True)
class EngineParts:
    """The collaborators of a started engine (built, not yet started)."""

    runs: RunStore
    defs: DefinitionStore
    kv: dict[str, KeyValue]
    executor: Executor
    payloads: Payloads
    feed: PullFeed
    timers: TimerService
    advisories: AdvisoryWatcher
    correlator: Correlator
    ending: RunEnding


async def open_parts(
    nc: NatsClient, *, max_inflight: int, clock: TimerClock | None = None
) -> EngineParts:
    """Open the stores and buckets, ensure the engine's consumer, build the collaborators."""
    js = nc.jetstream()
    runs = await RunStore.open(js)
    defs = await DefinitionStore.open(js)
    kv = {name: await js.key_value(name) for name in ENGINE_BUCKETS}
    executor = Executor(nc, js, defs, kv)
    await ensure_consumer(
        js,
        protocol.HISTORY_STREAM,
        ConsumerConfig(
            durable_name=protocol.ENGINE_CONSUMER,
            filter_subject=protocol.history_subject(">"),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ENGINE_ACK_WAIT_S,
            max_deliver=-1,
            max_ack_pending=50_000,
        ),
    )
    correlator = Correlator(nc, kv[protocol.KV_WAITERS])
    # A newly registered waiter looks back over recent events (the correlator's job).
    executor.on_waiter = correlator.lookback
    return EngineParts(
        runs=runs,
        defs=defs,
        kv=kv,
        executor=executor,
        payloads=Payloads(js),
        feed=PullFeed(
            nc, protocol.HISTORY_STREAM, protocol.ENGINE_CONSUMER, max_inflight=max_inflight
        ),
        timers=TimerService(nc, kv, clock=clock),
        advisories=AdvisoryWatcher(nc),
        correlator=correlator,
        ending=RunEnding(nc, runs, executor),
    )
