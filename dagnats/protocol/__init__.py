"""What every message and record on NATS looks like: the wire protocol of dagnats.

Pure: imports the standard library, pydantic and msgspec only (``wire``: the fast encoder of
task messages), never another part of dagnats, so the engine, workers, API, clients and
tests all agree on one spelling of every name.

- :mod:`~dagnats.protocol.names`: streams, buckets, consumers, subjects, ``NAME_PATTERN``
- :mod:`~dagnats.protocol.events`: history events, their types, and one constructor per
  input event returning the event and its dedup id
- :mod:`~dagnats.protocol.messages`: task, timer, waiter, approval and dead-letter bodies
- :mod:`~dagnats.protocol.keys`: KV and object keys (attempt, payload, checkpoint, signal)
- :mod:`~dagnats.protocol.ids`: run and worker ids (the clock and randomness live here)
- :mod:`~dagnats.protocol.durations`: the one duration rule
- :mod:`~dagnats.protocol.partitions`: history partitions, their consumers and leases
- :mod:`~dagnats.protocol.limits`: the bounds of names, JSON depth and reply text

``from dagnats import protocol`` then ``protocol.HISTORY_STREAM`` reads names and models.
"""

from __future__ import annotations

from dagnats.protocol.ids import new_run_id as new_run_id
from dagnats.protocol.ids import worker_id as worker_id
from dagnats.protocol.messages import TaskMessage as TaskMessage
from dagnats.protocol.names import *  # noqa: F403  (the names module is all constants)
from dagnats.protocol.partitions import history_filter as history_filter
