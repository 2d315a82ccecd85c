"""The one clock of dagnats: ``now()`` is what every event, timer and deadline is stamped with.

Everything that reads the time of day for a run (event timestamps, timers' due times,
approval deadlines, finish times, scheduled runs, cron, debounce) calls :func:`now` rather
than ``datetime.now``, so a test can put the whole process on a virtual clock
(``DagnatsEnv.start(time_skipping=True)`` installs one while it is open). Durations measured
for bounds (timeouts of a wait, heartbeats, ack waits) stay on the monotonic clock: they
are about this process' real progress, not about a run's time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM = SystemClock()
_current: Clock = SYSTEM


def now() -> datetime:
    """The time of day on the installed clock (the wall clock unless a test installed one)."""
    return _current.now()


def installed() -> Clock:
    return _current


@contextlib.contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Install ``clock`` for the whole process while the block runs.

    One replacement at a time: installing a second one over a replaced clock is refused,
    since two virtual clocks cannot both be the time of day.
    """
    global _current
    if _current is not SYSTEM:
        raise RuntimeError(
            "another clock is already installed (one DagnatsEnv with time_skipping=True "
            "per process at a time)"
        )
    _current = clock
    try:
        yield clock
    finally:
        _current = SYSTEM
