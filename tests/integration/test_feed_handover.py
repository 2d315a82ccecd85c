"""A pull feed abandoned while the server is delivering to it loses nothing to the ack wait.

What a partition's lease churn does to an engine's feeds: each feed is abandoned with pull
requests open and deliveries on their way, and a new feed takes over at once. A delivery
the server routed just before the feed's UNSUB can reach the client after a drain's PONG;
nats-py dropped it (its sid forgotten) and it came again only after the consumer's ack
wait (dagnats._nats.unsub). Here the ack wait is 30 s and the test waits at most
``WAIT_S``: every message must be handed to a feed and acked well before that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.feed import PullFeed
from dagnats._nats.types import AckPolicy, ConsumerConfig, NatsClient, StreamConfig
from dagnats.server import EmbeddedNats

STREAM, CONSUMER = "HANDOVER", "handover"
MESSAGES = 2_000
ROUNDS = 200  # feeds abandoned while deliveries are on their way
WAIT_S = 15.0  # half the ack wait: a dropped delivery cannot come back within it


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    conn = await connect_nats(nats_server.url)
    js = conn.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["handover.>"]))
    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_deliver=-1
        ),
    )
    yield conn
    await conn.close()


async def test_feeds_abandoned_mid_delivery_give_every_message_back(nc: NatsClient) -> None:
    js = nc.jetstream()
    acks = [js.publish("handover.x", str(i).encode()) for i in range(MESSAGES)]
    await asyncio.gather(*acks)
    acked: set[int] = set()
    for _ in range(ROUNDS):  # each feed is dropped while its first batch is on its way
        feed = PullFeed(nc, STREAM, CONSUMER, max_inflight=256)
        await feed.start()
        await feed.abandon()
    last = PullFeed(nc, STREAM, CONSUMER, max_inflight=256)
    await last.start()

    async def take_the_rest() -> None:
        while len(acked) < MESSAGES:
            msg = await last.get()
            await last.ack_done(msg)
            acked.add(int(msg.data))

    try:
        await asyncio.wait_for(take_the_rest(), WAIT_S)
    except TimeoutError:
        info = await js.consumer_info(STREAM, CONSUMER)
        raise AssertionError(
            f"{MESSAGES - len(acked)} messages still out after {WAIT_S}s "
            f"(ack pending {info.num_ack_pending}): dropped deliveries wait out the ack wait"
        ) from None
    finally:
        await last.stop()
    assert acked == set(range(MESSAGES))
