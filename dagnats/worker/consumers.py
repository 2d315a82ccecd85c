"""The durable task consumers: one per task (and per task + group) on ``TASK_QUEUES``.

Every process serving a task binds to the same durable, so the server spreads messages
over them and a message is handled by one of them. Work-queue streams refuse overlapping
filters, which is why there is exactly one durable per subject and no per-process consumer.
"""

from __future__ import annotations

import logging

from dagnats import protocol
from dagnats._nats.types import AckPolicy, ConsumerConfig, DeliverPolicy

log = logging.getLogger(__name__)

ACK_WAIT_S = 30.0
# After this many deliveries without an ack the server sends the MAX_DELIVERIES advisory,
# which the engine turns into a failed attempt (a lost worker), then the retry policy runs.
MAX_DELIVER = 3
# Shared by every process on the durable; the per-process bound is the pull feed's.
MAX_ACK_PENDING = 10_000


def consumer_config(task: str, group: str | None, ack_wait_s: float = ACK_WAIT_S) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=protocol.task_consumer_name(task, group),
        filter_subject=protocol.task_subject(task, group),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=MAX_DELIVER,
        max_ack_pending=MAX_ACK_PENDING,
        deliver_policy=DeliverPolicy.ALL,
    )
