"""PullFeed.ack_done on a real nats-server: the ack and the refill's pull request travel as
one ``+NXT`` on the message's ack subject, and the feed's accounting stays exact.

A second connection watches the consumer's NEXT subject, its ack subjects and the feed's
inbox (core subscribers see the same messages the server does), so each test can say how
many pull requests and acks went out and which statuses came back. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.feed import PullFeed
from dagnats._nats.types import (
    AckPolicy,
    ConsumerConfig,
    Msg,
    NatsClient,
    RetentionPolicy,
    StreamConfig,
)
from dagnats.server import EmbeddedNats

STREAM, CONSUMER, SUBJECT = "FEEDT", "feedt", "feedt.x"
WAIT_S = 5.0


@dataclass
class Wire:
    """What the server was sent on the consumer's subjects, and what the inbox got."""

    nexts: list[dict[str, int]] = field(default_factory=list)  # pull requests (NEXT)
    acks: list[bytes] = field(default_factory=list)  # bodies sent to ack subjects
    statuses: asyncio.Queue[tuple[str, str | None]] = field(default_factory=asyncio.Queue)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    first: dict[str, int] | None = None  # what start() asked for

    async def seen(self, acks: int) -> None:
        """Wait (bounded) until the watcher has seen this many acks."""
        async with self.changed:
            try:
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: len(self.acks) >= acks), WAIT_S
                )
            except TimeoutError:
                raise AssertionError(f"saw {self.acks}") from None

    def refills(self) -> list[dict[str, int]]:
        """The NEXT requests after start()'s: on a loaded machine the watcher was seen to
        miss the very first request sent after it subscribed, so that one is not counted."""
        if self.nexts and self.nexts[0] == self.first:
            return self.nexts[1:]
        return self.nexts

    async def note(self) -> None:
        async with self.changed:
            self.changed.notify_all()


@pytest.fixture
async def setup(nats_server: EmbeddedNats) -> AsyncIterator[tuple[NatsClient, NatsClient, Wire]]:
    nc = await connect_nats(nats_server.url)
    watcher = await connect_nats(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=STREAM, subjects=["feedt.>"], retention=RetentionPolicy.WORK_QUEUE)
    )
    await js.add_consumer(
        STREAM, ConsumerConfig(durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
    )
    wire = Wire()

    async def on_next(msg: Msg) -> None:
        wire.nexts.append(json.loads(msg.data))
        await wire.note()

    async def on_ack(msg: Msg) -> None:
        wire.acks.append(msg.data)
        await wire.note()

    await watcher.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{CONSUMER}", cb=on_next)
    await watcher.subscribe(f"$JS.ACK.{STREAM}.{CONSUMER}.>", cb=on_ack)
    await watcher.flush()
    yield nc, watcher, wire
    await watcher.close()
    await nc.close()


async def _watch_inbox(watcher: NatsClient, feed: PullFeed, wire: Wire) -> None:
    async def on_status(msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is not None:
            wire.statuses.put_nowait((status, (msg.headers or {}).get("Nats-Pending-Messages")))

    await watcher.subscribe(feed._inbox, cb=on_status)
    await watcher.flush()


async def _publish(nc: NatsClient, count: int) -> None:
    js = nc.jetstream()
    for i in range(count):
        await js.publish(SUBJECT, str(i).encode())


async def test_each_refill_is_one_nxt_and_every_message_comes_once(
    setup: tuple[NatsClient, NatsClient, Wire],
) -> None:
    nc, _watcher, wire = setup
    feed = PullFeed(nc, STREAM, CONSUMER, max_inflight=1, expires_s=5.0)  # none expires
    await feed.start()
    await _publish(nc, 20)
    got = []
    for _ in range(20):
        msg = await asyncio.wait_for(feed.get(), WAIT_S)
        got.append(int(msg.data))
        assert msg.metadata.num_delivered == 1
        await feed.ack_done(msg)
        assert msg.is_acked
    assert got == list(range(20))
    # One more message is delivered on the 20th +NXT's request, and the server handles an
    # ack before the pull request in the same +NXT: all 20 acks are applied by now.
    await _publish(nc, 1)
    last = await asyncio.wait_for(feed.get(), WAIT_S)
    info = await nc.jetstream().consumer_info(STREAM, CONSUMER)
    assert (info.num_ack_pending, info.num_redelivered, info.num_pending) == (1, 0, 0)
    await wire.seen(20)
    wire.first = {"batch": 1, "expires": 5_000_000_000}
    assert wire.refills() == []  # no NEXT but start()'s
    assert wire.acks == [b'+NXT {"batch":1,"expires":5000000000}'] * 20
    assert (feed.inflight, feed._requested) == (1, 0)
    await feed.ack_done(last)
    await feed.stop()


async def test_an_nxt_request_expires_with_its_unused_count(
    setup: tuple[NatsClient, NatsClient, Wire],
) -> None:
    """``expires`` is honoured on a +NXT: the server ends it with a 408 on the feed's inbox
    that says how much of it went unused, and the feed asks afresh."""
    nc, watcher, wire = setup
    feed = PullFeed(nc, STREAM, CONSUMER, max_inflight=3, expires_s=0.3)
    await feed.start()
    await _watch_inbox(watcher, feed, wire)
    await _publish(nc, 3)
    msgs = [await asyncio.wait_for(feed.get(), WAIT_S) for _ in range(3)]
    for msg in msgs:  # start()'s request is used up: each ack asks for the room it frees
        await feed.ack_done(msg)
    await wire.seen(3)
    assert wire.acks == [b'+NXT {"batch":1,"expires":300000000}'] * 3
    # The three +NXT requests expire unused: a 408 on the inbox says 1 went unused (a
    # stalled test may first see start()'s request end, with 0 or 3 unused)...
    while True:
        status, pending = await asyncio.wait_for(wire.statuses.get(), WAIT_S)
        assert status == "408"
        if pending == "1":
            break
    # ...and the feed asks again for what it lost (a NEXT), with no more than its room.
    await _publish(nc, 1)
    msg = await asyncio.wait_for(feed.get(), WAIT_S)
    assert int(msg.data) == 0
    assert feed.inflight == 1
    assert 0 <= feed._requested <= 2
    await feed.ack_done(msg)
    await feed.stop()


async def test_concurrent_handlers_keep_the_bound_and_the_count_exact(
    setup: tuple[NatsClient, NatsClient, Wire],
) -> None:
    nc, _watcher, wire = setup
    feed = PullFeed(nc, STREAM, CONSUMER, max_inflight=8, expires_s=5.0)  # none expires
    await feed.start()
    total = 300
    seen: list[int] = []
    peak = 0

    async def handle(msg: Msg) -> None:
        await asyncio.sleep(0.001 * (int(msg.data) % 3))
        seen.append(int(msg.data))
        await feed.ack_done(msg)

    await _publish(nc, total)
    tasks = set()
    for _ in range(total):
        msg = await asyncio.wait_for(feed.get(), WAIT_S)
        peak = max(peak, feed.inflight)
        tasks.add(asyncio.create_task(handle(msg)))
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
    assert sorted(seen) == list(range(total))
    assert peak <= 8
    assert feed.inflight == 0
    # The room is asked for in chunks of a quarter of it (or all of it from nothing):
    # at most 1 is left unasked...
    asked = feed._requested
    assert 7 <= asked <= 8
    # ...and the server agrees: of 12 new messages, none acked, exactly that many come.
    await _publish(nc, 12)
    held = [await asyncio.wait_for(feed.get(), WAIT_S) for _ in range(asked)]
    info = await nc.jetstream().consumer_info(STREAM, CONSUMER)
    assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (asked, 12 - asked, 0)
    assert feed.get_nowait() is None
    await wire.seen(total)
    # Every refill after start() went out with an ack (a message handled when nothing was
    # requested any more asks for its room at once: most of them, here).
    wire.first = {"batch": 8, "expires": 5_000_000_000}
    assert wire.refills() == []
    assert sum(a.startswith(b"+NXT ") for a in wire.acks) > total / 4
    for msg in held:
        await feed.ack_done(msg)
    await feed.stop()


async def test_a_paused_feed_acks_plainly_and_a_second_ack_raises(
    setup: tuple[NatsClient, NatsClient, Wire],
) -> None:
    nc, _watcher, wire = setup
    feed = PullFeed(nc, STREAM, CONSUMER, max_inflight=2)
    await feed.start()
    await _publish(nc, 2)
    a = await asyncio.wait_for(feed.get(), WAIT_S)
    b = await asyncio.wait_for(feed.get(), WAIT_S)
    feed.pause()
    await feed.ack_done(a)
    with pytest.raises(Exception, match="already"):
        await feed.ack_done(a)  # as msg.ack() twice does
    await wire.seen(1)
    assert wire.acks == [b""]  # a plain ack: a paused feed asks for nothing
    await b.ack()
    await feed.stop()
