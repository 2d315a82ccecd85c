"""Live feeds for watchers (the console's SSE): messages on a subject and a run's history.

A KV write is a publish on ``$KV.<bucket>.<key>``, so a core subscription on that subject
sees every later write of the key (or of every key, with ``>``) without replaying what is
stored. Core delivery is best effort: a slow reader loses messages past the subscription's
pending limits (``MAX_PENDING``), and a watcher re-reads what it shows instead of relying on
every message. Both feeds are async generators that run until the caller closes them
(their ``finally`` frees the subscription); a quiet period is not an end, so each wakes
every ``IDLE_S`` with ``None`` to let the caller send a keep-alive or notice a closed client.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from dagnats import protocol
from dagnats.protocol.events import Event

IDLE_S = 15.0
MAX_PENDING = 10_000


async def subject_feed(nc: NatsClient, subject: str) -> AsyncGenerator[Msg | None, None]:
    """Messages on ``subject`` from now on, and ``None`` after each quiet ``IDLE_S``."""
    sub = await nc.subscribe(subject, pending_msgs_limit=MAX_PENDING)
    try:
        while True:
            try:
                yield await sub.next_msg(timeout=IDLE_S)
            except TimeoutError:
                yield None
    finally:
        await sub.unsubscribe()


async def history_feed(js: JetStreamContext, run_id: str) -> AsyncGenerator[Event | None, None]:
    """The run's history from its first event on, then each new one (past its end too: a
    retry reopens a run); ``None`` after each quiet ``IDLE_S``."""
    sub = await js.subscribe(
        protocol.history_subject(run_id), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=IDLE_S)
            except TimeoutError:
                yield None
                continue
            yield Event.from_bytes(msg.data, msg.metadata.sequence.stream)
    finally:
        await sub.unsubscribe()
