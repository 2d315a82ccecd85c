"""Methodology: the facts ADR 0014 rests on, checked on the real nats-server so that a
server release that changes them fails here. A message is published with a ``Nats-Msg-Id``
to the task queue (a work-queue stream) and to the history (a limits stream); the task is
consumed and acked as a worker would. Without a restart both streams refuse the same id
again; after the server is SIGKILLed and restarted on its store the history still does, but
the work queue stores the same id as a new message (its deduplication forgot the ids of the
messages it had already removed), which is why a handler can run again after a restart."""

from __future__ import annotations

from dagnats import protocol
from dagnats.testing import DagnatsEnv


async def test_a_work_queue_forgets_message_ids_across_a_restart_the_history_does_not() -> None:
    async with DagnatsEnv.start(engine=False, api=False) as env:
        js = env.nc.jetstream()
        task = protocol.task_subject("dedup-probe")
        history = protocol.history_subject("dedup-probe-run")
        ids = {"Nats-Msg-Id": "dedup-probe-1"}
        await js.publish(task, b"{}", headers=ids)
        await js.publish(history, b"{}", headers=ids)
        sub = await js.pull_subscribe(task, durable="dedup-probe")
        for msg in await sub.fetch(1, timeout=5):
            await msg.ack_sync()  # consumed: the work queue removes it
        assert (await js.publish(task, b"{}", headers=ids)).duplicate
        await sub.unsubscribe()
        await env.restart_server(kill=True)
        js = env.nc.jetstream()
        assert (await js.publish(history, b"{}", headers=ids)).duplicate
        again = await js.publish(task, b"{}", headers=ids)
        assert not again.duplicate  # stored again: a second delivery of the same task
