"""The durable task consumers: one per task (and per task + group) on ``TASK_QUEUES``.

Every process serving a task binds to the same durable, so the server spreads messages
over them and a message is handled by one of them. Work-queue streams refuse overlapping
filters, which is why there is exactly one durable per subject and no per-process consumer.
"""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import APIError

from dagnats.dag import wire
from dagnats.errors import DagnatsError

log = logging.getLogger(__name__)

ACK_WAIT_S = 30.0
# After this many deliveries without an ack the server sends the MAX_DELIVERIES advisory,
# which the engine turns into a failed attempt (a lost worker), then the retry policy runs.
MAX_DELIVER = 3
# Shared by every process on the durable; the per-process bound is the pull feed's.
MAX_ACK_PENDING = 10_000
_ERR_OVERLAP = 10100  # filtered consumer not unique on a work-queue stream
_BIND_ATTEMPTS = 5


def consumer_config(task: str, group: str | None, ack_wait_s: float = ACK_WAIT_S) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=wire.task_consumer_name(task, group),
        filter_subject=wire.task_subject(task, group),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=MAX_DELIVER,
        max_ack_pending=MAX_ACK_PENDING,
        deliver_policy=DeliverPolicy.ALL,
    )


async def ensure_consumer(js: JetStreamContext, config: ConsumerConfig) -> ConsumerInfo:
    """Create the durable, or bring an existing one to ``config`` (idempotent).

    nats-server >= 2.10 treats a create without an action as create-or-update, so an
    existing durable with another configuration is updated in place. Several processes
    starting together race on the same request; transient failures are retried.
    """
    delay = 0.1
    for _ in range(_BIND_ATTEMPTS - 1):
        try:
            return await js.add_consumer(wire.TASK_STREAM, config)
        except APIError as exc:
            if exc.err_code == _ERR_OVERLAP:
                raise _overlap(config, exc) from exc
            log.debug("consumer %s: %s; retrying", config.durable_name, exc)
        except TimeoutError as exc:
            log.debug("consumer %s: %s; retrying", config.durable_name, exc)
        await asyncio.sleep(delay)
        delay *= 2
    try:
        return await js.add_consumer(wire.TASK_STREAM, config)
    except APIError as exc:
        if exc.err_code == _ERR_OVERLAP:
            raise _overlap(config, exc) from exc
        raise DagnatsError(
            f"cannot create consumer {config.durable_name}: {exc.description}"
        ) from exc
    except TimeoutError as exc:
        raise DagnatsError(
            f"cannot create consumer {config.durable_name}: JetStream did not answer"
        ) from exc


def _overlap(config: ConsumerConfig, exc: APIError) -> DagnatsError:
    return DagnatsError(
        f"cannot create consumer {config.durable_name} on {wire.TASK_STREAM}: another "
        f"consumer already filters {config.filter_subject} ({exc.description})"
    )
