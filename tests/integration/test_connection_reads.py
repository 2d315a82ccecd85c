"""Methodology: two faults found in a cold engine restart on a 10,000-run backlog, each on a
real nats-server. (1) A flush whose PONG comes after its timeout: with nats-py 2.16 alone the
PONG kills the client's read loop and every later reply is lost while the client says it is
connected (the engine stalled for good); through dagnats's ``connect`` the connection keeps
reading. (2) The engine's catch-up read asks for the run's literal history subject
(``read_history`` given the partition count), which must return what the wildcard
read returns."""

from __future__ import annotations

import pytest

import dagnats
from dagnats._nats.history import read_history
from dagnats._nats.types import Msg, NatsClient, NatsTimeoutError
from dagnats.testing import DagnatsEnv

TRIES = 2000  # flushes with a timeout shorter than any PONG (a few are quicker still)
REPLY_S = 2.0


async def _late_pong(nc: NatsClient) -> None:
    """Leave a flush's PONG to arrive after the flush gave up (its future cancelled)."""
    for _ in range(TRIES):
        try:
            await nc.flush(timeout=1e-9)  # type: ignore[arg-type]
        except NatsTimeoutError:  # nats-py's FlushTimeoutError
            return
    pytest.fail(f"no flush timed out in {TRIES} tries")


async def test_a_flush_that_timed_out_leaves_the_connection_reading(nc: NatsClient) -> None:
    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe("test.echo", cb=echo)
    await _late_pong(nc)
    reply = await nc.request("test.echo", b"still there", timeout=REPLY_S)
    assert reply.data == b"still there"
    await nc.flush(timeout=int(REPLY_S))  # and the PONGs after it still pair with their PINGs
    info = await nc.jetstream().account_info()
    assert info.streams > 0


async def test_the_literal_history_read_matches_the_wildcard_read(
    dagnats_env: DagnatsEnv,
) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def double(ctx: dagnats.TaskContext, n: int) -> int:
        return n * 2

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("literal-read")
    first = wf.step("a", task="double")
    wf.step("b", task="double", depends_on=[first])
    await dagnats_env.wait_workers_ready()
    runs = [await dagnats_env.client.start(wf, i) for i in range(5)]
    for run in runs:
        await run.result(timeout=30)
    engine = dagnats_env.engine
    assert engine is not None
    for run in runs:
        every = await read_history(dagnats_env.nc, run.run_id)
        assert len(every) >= 4
        literal = await read_history(
            dagnats_env.nc, run.run_id, before_seq=every[-1].seq, partitions=engine.partitions
        )
        assert [e.seq for e in literal] == [e.seq for e in every[:-1]]
        middle = every[1].seq
        part = await read_history(
            dagnats_env.nc,
            run.run_id,
            after_seq=middle,
            before_seq=every[-1].seq,
            partitions=engine.partitions,
        )
        assert [e.seq for e in part] == [e.seq for e in every[2:-1]]
