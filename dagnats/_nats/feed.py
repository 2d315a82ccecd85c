"""A streaming pull feed over a durable JetStream consumer.

nats-py's ``fetch(batch>1)`` waits for the whole timeout to fill a batch once it is idle,
which costs a round trip per message or a timeout per batch. This feed keeps pull requests
open for exactly the room left (``max_inflight - inflight - requested``) and hands messages
over as they arrive: low latency when idle, batching under load, and a per-process bound
on in-flight work (the consumer's ``max_ack_pending`` is shared by every process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from dagnats._nats.tasks import stop_task
from dagnats._nats.unsub import unsubscribe_lingering

log = logging.getLogger(__name__)

RECONNECT_CHECK_S = 0.5  # how soon pull requests are renewed after a reconnect


class PullFeed:
    """Messages of one durable pull consumer; call ``done()`` once per message handled."""

    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        consumer: str,
        *,
        max_inflight: int,
        expires_s: float = 1.0,
        may_pull: Callable[[], bool] | None = None,
    ) -> None:
        """``may_pull`` (when given) is asked before every pull request: an engine's feed
        stops asking the moment its partition lease lapses, so no request of its can
        still be open when another engine takes the partition (ADR 0017)."""
        if max_inflight < 1:
            raise ValueError("max_inflight must be >= 1")
        self._nc = nc
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._max = max_inflight
        self._expires_ns = int(expires_s * 1e9)
        self._expires_s = expires_s
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._requested = 0  # asked for, not yet delivered
        self._inflight = 0  # delivered, not yet done()
        self._sub: Subscription | None = None
        self._inbox = ""
        self._last_activity = time.monotonic()
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False
        self._stopping = False
        self._abandoned = False
        self._may_pull = may_pull
        self.name = consumer

    @property
    def inflight(self) -> int:
        return self._inflight

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        await self._refill()
        self._watchdog = asyncio.create_task(self._watch(), name=f"feed-watchdog-{self.name}")

    async def _on_msg(self, msg: Msg) -> None:
        self._last_activity = time.monotonic()
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self._requested = max(0, self._requested - 1)
            if self._stopping:
                # Answering a pull request made before pause(): give it to someone else.
                await self._give_back(msg)
                return
            self._inflight += 1
            self._queue.put_nowait(msg)
            return
        if status == "100":  # idle heartbeat
            return
        # 404/408/409: a pull request ended; the header says how much of it went unused.
        pending = msg.headers.get("Nats-Pending-Messages") if msg.headers else None
        if pending is not None and pending.isdigit():
            self._requested = max(0, self._requested - int(pending))
        else:
            self._requested = 0
        await self._refill()

    async def _give_back(self, msg: Msg) -> None:
        if self._abandoned:
            # A crash's successor is a fresh feed: no own pull request to bounce back to.
            with contextlib.suppress(Exception):
                await msg.nak()
            return
        # Delayed past the life of our own open pull requests, so the message goes to
        # another consumer instead of bouncing back here and spending its deliveries.
        with contextlib.suppress(Exception):
            await msg.nak(delay=self._expires_s + 0.5)

    def _due(self) -> int:
        """How many messages a pull request sent now should ask for; 0: none is due."""
        if self._closed or not self._nc.is_connected:
            return 0
        if self._may_pull is not None and not self._may_pull():
            return 0
        room = self._max - self._inflight - self._requested
        # Ask in chunks: one request per message would double the protocol traffic,
        # but never hold back when nothing at all is outstanding (latency when idle).
        if room <= 0 or (self._requested > 0 and room < max(1, self._max // 4)):
            return 0
        return room

    def _request(self, room: int) -> bytes:
        self._requested += room
        return b'{"batch":%d,"expires":%d}' % (room, self._expires_ns)

    async def _refill(self) -> None:
        room = self._due()
        if room:
            await self._nc.publish(self._api, self._request(room), reply=self._inbox)

    async def _watch(self) -> None:
        # Pull requests vanish on a reconnect or a consumer re-creation without any status
        # message. After a reconnect (seen within RECONNECT_CHECK_S), or when nothing has
        # been heard for longer than a request could live, start afresh.
        reconnects = self._reconnects()
        while not self._closed:
            await asyncio.sleep(min(self._expires_s, RECONNECT_CHECK_S))
            now = time.monotonic()
            seen = self._reconnects()
            if seen != reconnects or now - self._last_activity > self._expires_s * 2:
                reconnects = seen
                self._requested = 0
                self._last_activity = now
                with contextlib.suppress(Exception):
                    await self._refill()

    def _reconnects(self) -> int:
        try:
            return int(self._nc.stats["reconnects"])
        except (AttributeError, KeyError, TypeError, ValueError):
            return 0

    async def get(self) -> Msg:
        return await self._queue.get()

    def get_nowait(self) -> Msg | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def done(self) -> None:
        """One delivered message is finished (acked, naked or given up): make room."""
        self._inflight = max(0, self._inflight - 1)
        await self._refill()

    async def ack_done(self, msg: Msg) -> None:
        """``msg.ack()`` then ``done()``, in one message when done() would ask for more.

        ``+NXT {"batch", "expires"}`` sent to the message's ack subject with this feed's
        inbox as reply acks it, then opens a pull request exactly as one sent to the
        consumer's NEXT subject would (nats-server ``consumer.processAck`` hands the rest
        of the payload and the reply to ``processNextMsgRequest``): the same deliveries
        and the same 404/408/409 statuses with ``Nats-Pending-Messages`` on the inbox.
        nats-py has no call for it. An ack already sent raises as ``msg.ack()`` does.
        """
        self._inflight = max(0, self._inflight - 1)
        room = self._due()
        if not room or not msg.reply or msg.is_acked:
            try:
                await msg.ack()
            finally:
                await self._refill()
            return
        try:
            await self._nc.publish(msg.reply, b"+NXT " + self._request(room), reply=self._inbox)
        except BaseException:
            self._requested = max(0, self._requested - room)  # nothing went out
            raise
        msg._ackd = True  # as msg.ack() marks it (nats-py's own flag)

    def pause(self) -> None:
        """Stop asking for more (graceful drain); messages already queued stay queued,
        and any that open pull requests still bring are given back for other consumers."""
        self._closed = True
        self._stopping = True

    def drain_queued(self) -> list[Msg]:
        out: list[Msg] = []
        while True:
            m = self.get_nowait()
            if m is None:
                return out
            out.append(m)

    async def abandon(self) -> None:
        """Stop as a crash would, but without the wait: give back at once what is queued
        and what open pull requests still bring (what its ack wait running out would do)."""
        self._closed = True
        self._stopping = True
        self._abandoned = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for msg in self.drain_queued():
            await self._give_back(msg)
        await self._unsubscribe()
        self._inflight = 0

    async def _unsubscribe(self) -> None:
        # The UNSUB goes out now but the inbox keeps taking messages a moment longer
        # (dagnats._nats.unsub): a delivery the server sent before it saw the UNSUB reaches
        # ``_on_msg``, which gives it back, instead of being dropped to wait out its ack wait.
        sub, self._sub = self._sub, None
        if sub is not None:
            await unsubscribe_lingering(self._nc, sub)

    async def stop(self) -> None:
        """Stop for good: give back what is still queued, then unsubscribe.

        Open pull requests need no waiting out: the server drops a request whose inbox has
        lost its interest (measured: a message published after the unsubscribe reaches the
        next consumer within a millisecond, not after the ack wait).
        """
        self._closed = True
        self._stopping = True
        if self._watchdog is not None:
            await stop_task(self._watchdog)
        for msg in self.drain_queued():
            await self._give_back(msg)
            self._inflight = max(0, self._inflight - 1)
        await self._unsubscribe()
