"""End a subscription without dropping what the server had already routed to it.

nats-py offers ``unsubscribe()`` (the sid is forgotten at once) and ``drain()`` (UNSUB,
a PING/PONG, then the sid is forgotten). Neither is safe for a pull feed's inbox: a
JetStream consumer delivers from its own goroutine, so a delivery it routed just before
the UNSUB can reach the client *after* the drain's PONG (measured in the lease-churn test:
53 pull deliveries stamped before the UNSUB arrived after the drain had returned). nats-py
drops a message whose sid it has forgotten, without a word, and each one then waits out its
consumer's ack wait (7 s for the engine's events) before it comes again.

:func:`unsubscribe_lingering` sends the UNSUB at once (the server stops routing to the
subject: its open pull requests go unanswered, later deliveries go to other requests) and
drains the subscription only ``linger_s`` later, so its callback still sees, and can give
back, what was already on its way. nats-py has no public call for the first half; the
private names used (``Client._send_unsubscribe``, ``Subscription._id``) exist in nats-py
2.16; an upgrade that renames them fails loudly (at import, or with an AttributeError),
never silently. (The drain's second UNSUB of the same sid is a no-op for the server.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

if not hasattr(NatsClient, "_send_unsubscribe"):  # pragma: no cover - a nats-py upgrade
    raise ImportError("dagnats._nats.unsub needs nats-py's Client._send_unsubscribe (2.16)")

LINGER_S = 1.0
"""How long a subscription still takes messages after its UNSUB: far longer than a
delivery already routed by the server takes to arrive (milliseconds)."""
DRAIN_TIMEOUT_S = 2.0  # the drain at the end of the linger (a flush round trip)

_lingering: set[asyncio.Task[None]] = set()  # strong references until each ends


async def unsubscribe_lingering(
    nc: NatsClient, sub: Subscription, linger_s: float = LINGER_S
) -> None:
    """UNSUB ``sub`` now; drain it (and so forget it) after ``linger_s``.

    Cut off from the server, nothing is in flight: the subscription is dropped at once.
    """
    sent = False
    if nc.is_connected:
        try:
            await nc._send_unsubscribe(sub._id)
            sent = True
        except Exception as exc:  # noqa: BLE001 - a closing connection: nothing more arrives
            log.debug("UNSUB of %s not sent: %s", sub.subject, exc)
    if not sent:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        return
    task = asyncio.create_task(_linger(sub, linger_s), name=f"dagnats-unsub-{sub.subject}")
    _lingering.add(task)
    task.add_done_callback(_lingering.discard)


async def _linger(sub: Subscription, linger_s: float) -> None:
    try:
        await asyncio.sleep(linger_s)
        await asyncio.wait_for(sub.drain(), DRAIN_TIMEOUT_S)  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - closed or slow connection: drop what is left
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
