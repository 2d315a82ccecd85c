"""Run signals in the ``signals`` KV bucket (key ``<run_id>.<name>``, value = JSON data).

A signal is a value, not a queue: the latest one sent under a name is what a waiter gets,
including one sent before the wait began (the watch starts with the key's last value).
The client's ``run.signal()`` and the handler's ``ctx.send_signal()`` both use these.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dagnats import protocol
from dagnats._nats.checkpoints import decode_value, encode_value
from dagnats._nats.publish import append_event
from dagnats._nats.types import (
    KV_DEL,
    KV_PURGE,
    JetStreamContext,
    KeyValue,
    NatsTimeoutError,
    NotFoundError,
)
from dagnats.protocol import events as ev
from dagnats.protocol.keys import signal_key

log = logging.getLogger(__name__)


async def put_signal_raw(kv: KeyValue, key: str, value: bytes) -> int:
    return await kv.put(key, value)


async def send_signal(
    js: JetStreamContext, run_id: str, name: str, data: Any = None, *, kv: KeyValue | None = None
) -> int:
    """Send signal ``name`` with ``data`` (JSON) to run ``run_id``; returns the KV revision.

    The value in KV is what ``wait_for_signal`` reads; a ``signal.received`` record in the
    run's history makes it visible in ``run events`` (best effort: the signal counts anyway).
    """
    bucket = kv or await js.key_value(protocol.KV_SIGNALS)
    rev = await put_signal_raw(bucket, signal_key(run_id, name), encode_value(data, name))
    try:
        if not await _started(js, run_id):
            # Signals may be sent ahead of a run; only a started run's history records
            # them, so a signal cannot make an unknown or deleted run look alive.
            return rev
        await append_event(js, *ev.signal_received(run_id, name, data, rev))
    except Exception as exc:  # noqa: BLE001 - the signal is stored; recording it is best effort
        log.warning("run %s: signal %r sent but not recorded in its history: %s", run_id, name, exc)
    return rev


async def wait_signal_raw(kv: KeyValue, key: str, timeout_s: float | None) -> bytes:
    """The bytes of the first value of ``key`` (present or future); ``TimeoutError`` if none.

    The watch delivers the key's current value first, so there is no gap between a
    ``get`` and a subscription in which a signal could slip past unseen.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    # nats-py's KeyWatcher methods carry no annotations, hence the ignores below.
    watcher = await kv.watch(key)
    try:
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            if remaining == 0.0:
                raise TimeoutError(f"no signal at {key} within {timeout_s}s")
            try:
                entry = await watcher.updates(timeout=remaining)  # type: ignore[no-untyped-call]
            except NatsTimeoutError:
                raise TimeoutError(f"no signal at {key} within {timeout_s}s") from None
            # None marks the end of the initial values; deletes are not signals.
            if entry is None or entry.operation in (KV_DEL, KV_PURGE):
                continue
            return entry.value or b""
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]


async def wait_for_signal(
    js: JetStreamContext,
    run_id: str,
    name: str,
    timeout_s: float | None = None,
    *,
    kv: KeyValue | None = None,
) -> Any:
    """Wait for signal ``name`` of run ``run_id`` and return its data."""
    bucket = kv or await js.key_value(protocol.KV_SIGNALS)
    return decode_value(await wait_signal_raw(bucket, signal_key(run_id, name), timeout_s))


async def _started(js: JetStreamContext, run_id: str) -> bool:
    """Whether the run's history begins with its ``workflow.started`` (one direct get)."""
    try:
        first = await js.get_msg(
            protocol.HISTORY_STREAM, seq=1, next=True, subject=protocol.history_filter(run_id)
        )
    except NotFoundError:
        return False
    return b'"type":"workflow.started"' in (first.data or b"")[:64]
