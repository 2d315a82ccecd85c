"""Publishing helpers: dedup ids on every JetStream publish, and atomic batches."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import BadRequestError, NoStreamResponseError

from dagnats import protocol
from dagnats.protocol.events import Event
from dagnats.telemetry import tracing

ACK_TIMEOUT_S = 5.0  # the longest an async publish's ack is awaited (then: the retry path)
PUBLISH_ACK_TIMEOUT_S = ACK_TIMEOUT_S  # the name main gave it
MAX_ATOMIC_BATCH = 1000  # nats-server refuses larger atomic batches (error 10199)
ERR_BATCH_DUPLICATE_ID = 10201  # "atomic publish batch contains duplicate message id"


def stall_timeout(js: JetStreamContext, timeout_s: float) -> float | None:
    """The ``wait_stall`` to give ``publish_async``: ``None`` while a pending-publish slot
    is free, so that nats-py awaits the slot directly; with a timeout it wraps the wait in
    ``asyncio.wait_for``, which on Python 3.11 costs a task and a timer per publish (5 % of
    the engine's CPU at 3,000 concurrent runs). ``timeout_s`` when all slots are taken."""
    slots = getattr(js, "_publish_async_pending_semaphore", None)
    if isinstance(slots, asyncio.Semaphore) and not slots.locked():
        return None  # acquired at once: nothing to bound
    return timeout_s


def msg_id(dedup_id: str) -> dict[str, str]:
    """The headers of every JetStream publish: the dedup id, and the current span's W3C
    ``traceparent`` when tracing is on (so the role handling the message continues it)."""
    return tracing.stamp({"Nats-Msg-Id": dedup_id})


async def publish_atomic(
    nc: NatsClient,
    js: JetStreamContext,
    messages: Sequence[tuple[str, bytes, dict[str, str]]],
    *,
    timeout_s: float = 10.0,
) -> None:
    """Publish ``messages`` as atomic batches of at most 1000 (chunked above that).

    Each chunk is all-or-nothing. Repeating a chunk after a crash is refused whole when some
    of its message ids are already stored (error 10201); then its messages are published
    one by one, and the stream's dedup keeps only those that were missing.
    """
    for start in range(0, len(messages), MAX_ATOMIC_BATCH):
        chunk = messages[start : start + MAX_ATOMIC_BATCH]
        if len(chunk) == 1:
            subject, data, headers = chunk[0]
            await js.publish(subject, data, headers=headers, timeout=timeout_s)
            continue
        try:
            await _publish_batch(nc, js, chunk, timeout_s)
        except BadRequestError as exc:
            if exc.err_code != ERR_BATCH_DUPLICATE_ID:
                raise
            acks = [await js.publish_async(s, d, headers=h) for s, d, h in chunk]
            await gather_acks(acks)


async def _publish_batch(
    nc: NatsClient,
    js: JetStreamContext,
    chunk: Sequence[tuple[str, bytes, dict[str, str]]],
    timeout_s: float,
) -> None:
    batch_id = secrets.token_hex(8)
    for i, (subject, data, headers) in enumerate(chunk[:-1], start=1):
        hdrs = {**headers, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(i)}
        await nc.publish(subject, data, headers=hdrs)
    subject, data, headers = chunk[-1]
    hdrs = {
        **headers,
        "Nats-Batch-Id": batch_id,
        "Nats-Batch-Sequence": str(len(chunk)),
        "Nats-Batch-Commit": "1",
    }
    await js.publish(subject, data, headers=hdrs, timeout=timeout_s)


def surely_not_stored(exc: BaseException) -> bool:
    """Whether a failed JetStream publish surely stored nothing: "no responders" (no stream
    leader took it: a leader election on a cluster, or no stream), as opposed to a timeout,
    after which the message may have been stored."""
    return isinstance(exc, NoStreamResponseError)


async def append_event(
    js: JetStreamContext, event: Event, dedup_id: str, *, timeout_s: float | None = None
) -> PubAck:
    """Append ``event`` to its run's history (``history.<run_id>``), deduplicated by id."""
    return await js.publish(
        protocol.history_subject(event.run_id),
        event.to_bytes(),
        headers=msg_id(dedup_id),
        timeout=timeout_s,
    )


async def gather_acks(
    futures: Sequence[asyncio.Future[PubAck]], *, timeout_s: float = ACK_TIMEOUT_S
) -> None:
    """Wait for every async publish; the first failure is raised after all have settled.

    An ack lost on the way (the server killed after storing the message, a leader change)
    would leave its future pending for ever, holding one of nats-py's pending-publish slots:
    after ``timeout_s`` the pending ones are cancelled (which frees their slots) and
    ``TimeoutError`` is raised, so that the caller publishes again with the same message ids.
    """
    if not futures:
        return
    _done, pending = await asyncio.wait(futures, timeout=timeout_s)
    for f in pending:
        f.cancel()
    if pending:
        await asyncio.sleep(0)  # the cancelled futures' callbacks free their slots
        raise TimeoutError(
            f"{len(pending)} of {len(futures)} JetStream publish acks not received within "
            f"{timeout_s:g}s (ACK_TIMEOUT_S)"
        )
    for f in futures:
        exc = f.exception()
        if exc is not None:
            raise exc
