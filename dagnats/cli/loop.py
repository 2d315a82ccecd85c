"""Which event loop the long-running commands use: uvloop when it is installed.

``serve``, ``engine``, ``api`` and ``worker`` spend most of their CPU in the event loop
(callbacks, timers, socket writes); uvloop (the ``dagnats[fast]`` extra) does that work in C
(issue 10 measured the engine's CPU per run 18-26 % lower with it). Used when importable,
unless ``--no-uvloop`` or ``DAGNATS_UVLOOP=0`` says otherwise; without it the standard loop.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

log = logging.getLogger(__name__)

T = TypeVar("T")

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


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = False) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    factory = loop_factory(use_uvloop)
    log.debug("event loop: %s", "uvloop" if factory is not None else "asyncio")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
