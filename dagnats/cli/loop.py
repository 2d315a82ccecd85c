"""Which event loop the long-running commands use: uvloop when it is installed.

``serve``, ``engine``, ``api`` and ``worker`` spend most of their CPU in the event loop
(callbacks, timers, socket writes); uvloop (the ``dagnats[fast]`` extra) does that work in C
(issue 10 measured the engine's CPU per run 18-26 % lower with it). Used when importable,
unless ``--no-uvloop`` or ``DAGNATS_UVLOOP=0`` says otherwise; without it the standard loop.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from dagnats.cli import memory

log = logging.getLogger(__name__)

T = TypeVar("T")

GC_THRESHOLD = (50_000, 10, 10)  # Python's default first threshold is 700
GC_ENV = "DAGNATS_GC"  # "tuned" (or unset): tune_gc; "default": leave Python's collector
GC_MODES = ("tuned", "default")

UvloopOpt = Annotated[
    bool,
    typer.Option(
        "--uvloop/--no-uvloop",
        envvar="DAGNATS_UVLOOP",
        show_envvar=True,
        help="Run on uvloop when it is installed (pip install 'dagnats[fast]').",
    ),
]


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor when asked for and installed; ``None``: asyncio's own."""
    if not use_uvloop:
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def tune_gc() -> None:
    """Fewer cyclic collections in a long-running process, none over its start-up objects.

    Issue 10 measured the engine under 1,000 concurrent 3-step runs (Python 3.11) spending
    about a fifth of its CPU in the cyclic collector: runs in flight keep many young objects
    alive, so the default first threshold (700) collects over a hundred times a second,
    finding little, and the full passes over the whole heap took up to 50 ms each.
    ``gc.freeze()`` takes what exists at start (modules, schemas) out of every later pass;
    a first threshold of 50,000 makes passes rare (a few per 3,000 steps). Cycles wait
    longer for their collection: see benchmarks/RESULTS.md for the engine's memory.
    """
    mode = os.environ.get(GC_ENV) or "tuned"
    if mode not in GC_MODES:
        raise ValueError(f"{GC_ENV} must be one of {', '.join(GC_MODES)}, got {mode!r}")
    if mode == "default":
        return
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def prepare_long_running(main: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
    """What every long-running process (serve, engine, api, worker, the benchmark's) does
    before its loop starts: the collector tuned (:func:`tune_gc`) and ``main`` wrapped to
    give freed memory back as it runs (:mod:`dagnats.cli.memory`). A bad ``DAGNATS_GC`` or
    ``DAGNATS_MALLOC_TRIM`` raises ``ValueError`` here, and ``main`` is closed unrun."""
    try:
        tune_gc()
        lib = memory.glibc() if memory.wanted() else None
    except BaseException:
        main.close()
        raise
    return main if lib is None else memory.with_freed_memory_returned(main, lib)


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = False, long_running: bool = False) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks; a ``long_running``
    process (serve, engine, api, worker) is prepared first (:func:`prepare_long_running`)."""
    if long_running:
        main = prepare_long_running(main)
    factory = loop_factory(use_uvloop)
    log.debug("event loop: %s", "uvloop" if factory is not None else "asyncio")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
