"""The event loop of every benchmark process: uvloop or asyncio's, from ``DAGNATS_BENCH_UVLOOP``.

The driver sets the variable for the processes it starts (``--uvloop/--no-uvloop``), so the
engine, the API, the worker and the client all run on the same kind of loop. Unset means
uvloop when it is installed, as ``dagnats[fast]`` does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from dagnats.cli.loop import prepare_long_running

ENV = "DAGNATS_BENCH_UVLOOP"
T = TypeVar("T")


def available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def wanted() -> bool:
    """Whether this process should run on uvloop (``ENV`` = "1"/"0", else when installed)."""
    value = os.environ.get(ENV)
    if value is None:
        return available()
    if value not in ("0", "1"):
        raise SystemExit(f"{ENV} must be 0 or 1, not {value!r}")
    if value == "1" and not available():
        raise SystemExit(f"{ENV}=1 but uvloop is not installed (pip install 'dagnats[fast]')")
    return value == "1"


def _factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not wanted():
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, long_running: bool = False) -> T:
    """``asyncio.run`` on the loop this process was asked for; the engine, API and worker
    processes tune the collector and give freed memory back as ``dagnats serve`` and
    ``dagnats worker`` do."""
    if long_running:
        main = prepare_long_running(main)
    with asyncio.Runner(loop_factory=_factory()) as runner:
        return runner.run(main)


def name() -> str:
    return "uvloop" if wanted() else "asyncio"
