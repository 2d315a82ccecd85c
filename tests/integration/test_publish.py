"""Methodology: atomic batch publishing against a real nats-server 2.12+: all-or-nothing
chunks, chunking above 1000, and a repeated batch (an engine crash after publishing) that must
fill in what is missing without duplicating anything."""

from __future__ import annotations

from dagnats import protocol
from dagnats._nats.publish import msg_id, publish_atomic
from dagnats._nats.types import NatsClient


def batch(n: int, start: int = 0) -> list[tuple[str, bytes, dict[str, str]]]:
    return [(protocol.task_subject("t"), str(i).encode(), msg_id(f"m{i}")) for i in range(start, n)]


async def test_chunks_above_1000_and_repeats_fill_in(nc: NatsClient) -> None:
    js = nc.jetstream()
    await publish_atomic(nc, js, batch(1500))
    info = await js.stream_info(protocol.TASK_STREAM)
    assert info.state.messages == 1500
    # A crash after the first chunk: the whole call runs again, with a few more messages.
    await publish_atomic(nc, js, batch(1600))
    info = await js.stream_info(protocol.TASK_STREAM)
    assert info.state.messages == 1600
    await publish_atomic(nc, js, batch(1600))  # and once more: nothing changes
    assert (await js.stream_info(protocol.TASK_STREAM)).state.messages == 1600
