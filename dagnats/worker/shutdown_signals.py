"""SIGINT/SIGTERM for workers: one loop handler per event loop, shared by its workers.

A loop holds one handler per signal, so two workers installing their own would replace each
other (and the first to stop would remove the other's). Instead the first worker of a loop
installs a dispatcher that tells every registered worker, and the last one to leave puts
back what was there before.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import weakref
from collections.abc import Callable
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)

Callback = Callable[[signal.Signals], None]


class _Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.callbacks: list[Callback] = []
        self.previous: list[tuple[signal.Signals, Any]] = []

    def install(self) -> None:
        for sig in SIGNALS:
            previous = signal.getsignal(sig)
            try:
                self.loop.add_signal_handler(sig, self.dispatch, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # e.g. Windows loops
                continue
            self.previous.append((sig, previous))

    def dispatch(self, sig: signal.Signals) -> None:
        for callback in list(self.callbacks):
            callback(sig)

    def restore(self) -> None:
        for sig, previous in self.previous:
            with contextlib.suppress(Exception):
                self.loop.remove_signal_handler(sig)
                if previous is not None:
                    signal.signal(sig, previous)
        self.previous.clear()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()


def install(callback: Callback) -> Callable[[], None]:
    """Call ``callback`` on SIGINT/SIGTERM until the returned function is called.

    Only in the main thread (the only one Python delivers signals to); elsewhere a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = _Hub(loop)
        hub.install()
    hub.callbacks.append(callback)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            hub.callbacks.remove(callback)
        if not hub.callbacks:
            hub.restore()
            _hubs.pop(loop, None)

    return remove
