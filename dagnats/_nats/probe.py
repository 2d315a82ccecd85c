"""How much work JetStream holds: stream and consumer counters, for a test's clock.

A time-skipping test environment advances its virtual clock only when nothing is queued,
running or being applied; these are the counters it reads (one request each, ~0.2 ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from dagnats import protocol
from dagnats._nats.kvscan import scan
from dagnats.protocol import partitions
from dagnats.protocol.messages import ApprovalRecord

MAX_SCANNED = 10_000  # outside waits looked at per probe (a test holds a handful)


@dataclass(frozen=True, slots=True)
class Backlog:
    """One stream's messages and one of its consumers' outstanding deliveries."""

    messages: int
    """Messages in the stream (on a work queue: queued or being worked on)."""
    last_seq: int
    """The stream's last sequence: changes whenever anything is published to it."""
    pending: int
    """Messages the consumer has not been delivered yet."""
    unacked: int
    """Messages delivered to the consumer and not acked yet."""


async def backlog(js: JetStreamContext, stream: str, consumer: str | None = None) -> Backlog:
    """The counters of ``stream`` (and of ``consumer`` on it, zero when it does not exist)."""
    info = await js.stream_info(stream)
    messages, last_seq = info.state.messages, info.state.last_seq
    pending = unacked = 0
    if consumer is not None:
        try:
            ci = await js.consumer_info(stream, consumer)
        except NotFoundError:
            pass
        else:
            pending, unacked = ci.num_pending, ci.num_ack_pending
    return Backlog(messages, last_seq, pending, unacked)


async def engine_backlog(js: JetStreamContext) -> Backlog:
    """The history stream's counters, summed over its partitions' engine consumers."""
    info = await js.stream_info(protocol.HISTORY_STREAM)
    pending = unacked = 0
    for ci in await js.consumers_info(protocol.HISTORY_STREAM):
        if ci.name.startswith(partitions.ENGINE_CONSUMER_PREFIX):
            pending += ci.num_pending or 0
            unacked += ci.num_ack_pending or 0
    return Backlog(info.state.messages, info.state.last_seq, pending, unacked)


async def outside_waits(js: JetStreamContext, now: datetime) -> int:
    """Run steps waiting for the outside world: open approvals not expired at ``now``, and
    registered event waiters (``wait_for_event`` steps)."""
    count = 0
    approvals = await js.key_value(protocol.KV_APPROVALS)
    for entry in await scan(approvals, ">", limit=MAX_SCANNED):
        if not entry.value or entry.key.startswith("step."):
            continue  # the step's reference to its token, not a token's record
        try:
            record = ApprovalRecord.model_validate_json(entry.value)
        except ValueError:
            continue
        if record.state == "open" and record.expires_at > now:
            count += 1
    waiters = await js.key_value(protocol.KV_WAITERS)
    count += len(await scan(waiters, ">", limit=MAX_SCANNED))
    return count
