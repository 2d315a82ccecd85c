"""Run logs: the records a handler logs through ``ctx.logger``, kept per step (pure).

One record per step (per map item) in the ``run_logs`` bucket, holding the *last* lines of
every attempt, bounded by :data:`MAX_LOG_LINES` and :data:`MAX_LOG_BYTES`; older lines are
dropped and counted in ``dropped`` so a reader knows the log was cut, and a single line is
cut at :data:`MAX_LINE_CHARS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from dagnats.protocol.model_config import WIRE_CONFIG

MAX_LOG_LINES = 200
MAX_LOG_BYTES = 64 * 1024
MAX_LINE_CHARS = 4096
LINE_OVERHEAD_BYTES = 64  # the JSON around a line's message: time, level, attempt


class LogLine(BaseModel):
    model_config = WIRE_CONFIG

    ts: datetime
    """When the handler logged it (UTC)."""
    level: str
    """``INFO``, ``WARNING``, ``ERROR``, ..."""
    attempt: int
    """The step attempt (1-based) that logged it."""
    message: str
    """The formatted message, cut at ``MAX_LINE_CHARS`` characters."""
    item: int | None = None
    """The map instance, for a map step."""
    iteration: int = 0
    """The agent-loop iteration."""

    @property
    def size(self) -> int:
        return len(self.message.encode()) + LINE_OVERHEAD_BYTES


def cut_line(message: str) -> str:
    if len(message) <= MAX_LINE_CHARS:
        return message
    return message[: MAX_LINE_CHARS - 1] + "…"


class StepLog(BaseModel):
    """The last lines one step (or map item) logged, over all its attempts."""

    model_config = WIRE_CONFIG

    lines: list[LogLine] = Field(default_factory=list)
    """Oldest first."""
    dropped: int = 0
    """Older lines left out to stay within the bounds."""

    def extend(self, new: Iterable[LogLine]) -> StepLog:
        """A copy with ``new`` appended and the oldest lines dropped past the bounds."""
        lines = [*self.lines, *new]
        dropped = self.dropped
        total = sum(line.size for line in lines)
        start = 0
        while start < len(lines) and (len(lines) - start > MAX_LOG_LINES or total > MAX_LOG_BYTES):
            total -= lines[start].size
            start += 1
        return StepLog(lines=lines[start:], dropped=dropped + start)
