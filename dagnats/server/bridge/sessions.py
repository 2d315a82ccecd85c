"""Bridge sessions: an HTTP worker's durable-consumer bindings and the tasks it holds.

A session binds to the same durable consumers (``task-<task>[-<group>]``, the config of
:func:`dagnats.worker.consumers.consumer_config`) through the same :class:`PullFeed` a
Python worker uses, so HTTP and Python workers share one queue per task. Every message
delivered to a session, waiting to be polled or handed out, is kept alive by the worker's
:class:`Heartbeater` for as long as the session is; a session not heard from within its
lease is closed and its messages are given back (``nak``), which is what a lost Python
worker's messages get after ``ack_wait``, only sooner.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from dataclasses import dataclass, field

from dagnats import protocol
from dagnats._nats.feed import PullFeed
from dagnats._nats.types import Msg
from dagnats.worker.context import TaskContext

log = logging.getLogger(__name__)


@dataclass
class HeldTask:
    """A task handed out to an HTTP worker, until it resolves it."""

    task_id: str
    msg: Msg
    message: protocol.TaskMessage
    feed: PullFeed
    ctx: TaskContext
    delivery: int
    deadline: float | None
    """``time.monotonic()`` past which the bridge fails the step (its timeout)."""


@dataclass
class Session:
    worker_id: str
    name: str
    lease_s: float
    feeds: list[PullFeed] = field(default_factory=list)
    dispatchers: list[asyncio.Task[None]] = field(default_factory=list)
    ready: asyncio.Queue[tuple[Msg, PullFeed]] = field(default_factory=asyncio.Queue)
    held: dict[str, HeldTask] = field(default_factory=dict)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    last_seen: float = field(default_factory=time.monotonic)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def new(cls, name: str, lease_s: float) -> Session:
        return cls(worker_id=f"w{secrets.token_hex(12)}", name=name, lease_s=lease_s)

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def expired(self, now: float) -> bool:
        return now - self.last_seen > self.lease_s

    def next_task_id(self) -> str:
        return f"{self.worker_id}-{next(self._ids)}"

    async def next_ready(self, wait_s: float) -> tuple[Msg, PullFeed] | None:
        """The next delivered message, waiting up to ``wait_s`` (None: none, or closed)."""
        try:
            return self.ready.get_nowait()
        except asyncio.QueueEmpty:
            if wait_s <= 0:
                return None
        getter = asyncio.ensure_future(self.ready.get())
        closing = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({getter, closing}, timeout=wait_s, return_when="FIRST_COMPLETED")
        finally:
            closing.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    def drain_ready(self) -> list[tuple[Msg, PullFeed]]:
        out = []
        while True:
            try:
                out.append(self.ready.get_nowait())
            except asyncio.QueueEmpty:
                return out

    async def stop_feeds(self) -> None:
        for job in self.dispatchers:
            job.cancel()
        if self.dispatchers:  # a cancellation of ours still ends this wait (_nats.tasks)
            await asyncio.wait(self.dispatchers)
        for feed in self.feeds:
            feed.pause()
            await feed.stop()
