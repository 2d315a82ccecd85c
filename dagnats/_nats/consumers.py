"""Durable consumers: create or update idempotently, and read them with a loop task."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, ConsumerInfo
from nats.js.errors import APIError

from dagnats._nats.feed import PullFeed
from dagnats._nats.tasks import stop_task
from dagnats.errors import DagnatsError, NatsUnavailableError

log = logging.getLogger(__name__)

_ERR_OVERLAP = 10100  # filtered consumer not unique on a work-queue stream
_BIND_ATTEMPTS = 5


async def ensure_consumer(
    js: JetStreamContext, stream: str, config: ConsumerConfig
) -> ConsumerInfo:
    """Create the durable, or bring an existing one to ``config`` (idempotent).

    nats-server >= 2.10 treats a create without an action as create-or-update, so an
    existing durable with another configuration is updated in place. Several processes
    starting together race on the same request; transient failures are retried (bounded).
    """
    delay = 0.1
    for attempt in range(1, _BIND_ATTEMPTS + 1):
        try:
            return await js.add_consumer(stream, config)
        except APIError as exc:
            if exc.err_code == _ERR_OVERLAP:
                raise DagnatsError(
                    f"cannot create consumer {config.durable_name} on {stream}: another "
                    f"consumer already filters {config.filter_subject} ({exc.description})"
                ) from exc
            if attempt == _BIND_ATTEMPTS:
                raise DagnatsError(
                    f"cannot create consumer {config.durable_name} on {stream}: {exc.description}"
                ) from exc
            log.debug("consumer %s: %s; retrying", config.durable_name, exc)
        except TimeoutError as exc:
            if attempt == _BIND_ATTEMPTS:
                raise NatsUnavailableError(
                    f"cannot create consumer {config.durable_name} on {stream}: JetStream "
                    "did not answer"
                ) from exc
            log.debug("consumer %s: %s; retrying", config.durable_name, exc)
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # the loop returns or raises


class ConsumerLoop(ABC):
    """One durable consumer read through a :class:`PullFeed` by a loop task.

    Subclasses implement :meth:`handle`; with ``concurrent`` each message gets its own task
    (bounded by ``max_inflight``, the feed's room), otherwise messages are handled in order.
    ``handle`` must ack, nak or term the message; the loop then frees its room.
    """

    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        config: ConsumerConfig,
        *,
        max_inflight: int,
        concurrent: bool = False,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.stream = stream
        self.config = config
        self.max_inflight = max_inflight
        self.concurrent = concurrent
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.feed = PullFeed(nc, stream, config.durable_name or "", max_inflight=max_inflight)

    async def start(self) -> None:
        await ensure_consumer(self.js, self.stream, self.config)
        name = self.config.durable_name or ""
        await self.feed.start()
        self._loop = asyncio.create_task(self._consume(), name=f"dagnats-{name}")

    def pause(self) -> None:
        if self._loop is not None:
            self.feed.pause()

    async def stop(self, timeout_s: float = 5.0) -> None:
        if self._loop is None:
            return
        self.feed.pause()
        await stop_task(self._loop)
        self._loop = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        await self.feed.stop()

    @abstractmethod
    async def handle(self, msg: Msg) -> None:
        """Process one message (ack, nak or term it)."""

    async def _handle_and_free(self, msg: Msg) -> None:
        try:
            await self.handle(msg)
        finally:
            await self.feed.done()

    async def _consume(self) -> None:
        while True:
            msg = await self.feed.get()
            if not self.concurrent:
                await self._handle_and_free(msg)
                continue
            task = asyncio.create_task(self._handle_and_free(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
