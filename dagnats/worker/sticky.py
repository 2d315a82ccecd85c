"""Sticky runs on the worker side: bind a run to the worker that takes its first step.

A sticky run's tasks go to every worker serving the task until the run is bound; the worker
that takes one first binds the run to itself (a create-only write of ``sticky_bindings``
``<run id>`` -> worker id, kept a day). From then on the engine sends the run's tasks to that
worker's own subject ``task.<task>.@<worker id>``. A task that reached another worker before
the binding was visible (parallel first steps) is forwarded to the bound worker's subject;
a soft run's fallback copy (the bound worker did not start it in time) runs anywhere.
"""

from __future__ import annotations

import logging

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.types import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValue
from dagnats.worker.consumers import MAX_ACK_PENDING, MAX_DELIVER

log = logging.getLogger(__name__)

BIND_TRIES = 3
# A worker's own consumers outlive it by this long, then the server removes them. Tasks
# still on a gone worker's subject then wait for nobody: a hard-sticky run's (required)
# timeout ends the run; a soft one's fallback copies went to every worker already.
OWN_CONSUMER_IDLE_S = 3600.0


def own_consumer_config(task: str, worker_id: str, ack_wait_s: float) -> ConsumerConfig:
    """The consumer of one worker's own subject for ``task`` (sticky runs bound to it)."""
    group = protocol.sticky_group(worker_id)
    return ConsumerConfig(
        durable_name=protocol.task_consumer_name(task, group),
        filter_subject=protocol.task_subject(task, group),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=MAX_DELIVER,
        max_ack_pending=MAX_ACK_PENDING,
        deliver_policy=DeliverPolicy.ALL,
        inactive_threshold=OWN_CONSUMER_IDLE_S,
    )


async def bound_worker(kv: KeyValue, run_id: str, worker_id: str) -> str:
    """The worker ``run_id`` is bound to, binding it to ``worker_id`` if it is not yet."""
    for _ in range(BIND_TRIES):
        held, _rev = await cas.read(kv, run_id)
        if held is not None:
            return held.decode()
        if await cas.write(kv, run_id, worker_id.encode(), 0) is not None:
            log.debug("run %s is bound to worker %s", run_id, worker_id)
            return worker_id
    return worker_id  # the binding keeps changing under us (expiry races): run it here


def needs_binding(tm: protocol.TaskMessage, subject: str) -> bool:
    """Whether a task must go through the binding check before it runs here."""
    if not tm.sticky or tm.fallback:
        return False
    return not protocol.is_sticky_subject(subject)
