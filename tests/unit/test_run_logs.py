"""Methodology: the bounds of a step's log (``protocol.logs.StepLog``, the worker's
``LogCapture``) and what ``ctx.logger`` captures, on a fake context (no NATS): line and byte
limits drop the oldest lines and count them, a long line is cut, DEBUG is not kept, a
exception adds its type and message."""

from __future__ import annotations

from datetime import UTC, datetime

from dagnats.protocol.logs import (
    MAX_LINE_CHARS,
    MAX_LOG_BYTES,
    MAX_LOG_LINES,
    LogLine,
    StepLog,
)
from dagnats.testing import fake_context
from dagnats.worker.context import LogCapture, _format


def _line(message: str, attempt: int = 1) -> LogLine:
    return LogLine(ts=datetime.now(UTC), level="INFO", attempt=attempt, message=message)


def test_step_log_keeps_the_last_lines_and_counts_the_dropped() -> None:
    log = StepLog().extend(_line(f"a{i}") for i in range(150))
    log = log.extend(_line(f"b{i}", attempt=2) for i in range(150))
    assert len(log.lines) == MAX_LOG_LINES
    assert log.dropped == 100
    assert log.lines[0].message == "a100" and log.lines[-1].message == "b149"


def test_step_log_stays_within_its_bytes() -> None:
    big = "x" * 4000
    log = StepLog().extend(_line(big) for _ in range(40))
    assert sum(line.size for line in log.lines) <= MAX_LOG_BYTES
    assert log.dropped == 40 - len(log.lines) and log.dropped > 0


def test_capture_is_bounded_and_cuts_long_lines() -> None:
    cap = LogCapture(attempt=3, item=None, iteration=0)
    for i in range(MAX_LOG_LINES + 5):
        cap.add(20, f"line {i}")
    cap.add(30, "y" * (MAX_LINE_CHARS + 10))
    lines, dropped = cap.take()
    assert len(lines) == MAX_LOG_LINES and dropped == 6
    assert lines[-1].level == "WARNING" and len(lines[-1].message) == MAX_LINE_CHARS
    assert lines[-1].message.endswith("…") and lines[0].attempt == 3
    assert cap.take() == ([], 0)


def test_ctx_logger_captures_info_and_above() -> None:
    ctx = fake_context(attempt=2)
    ctx.logger.debug("not kept")
    ctx.logger.info("fetched %d rows from %s", 3, "db")
    try:
        raise ValueError("bad row")
    except ValueError:
        ctx.logger.exception("parse failed")
    lines, dropped = ctx.log_capture.take()
    assert [(line.level, line.message) for line in lines] == [
        ("INFO", "fetched 3 rows from db"),
        ("ERROR", "parse failed (ValueError: bad row)"),
    ]
    assert dropped == 0 and all(line.attempt == 2 for line in lines)


def test_a_formatting_mistake_still_gives_a_line() -> None:
    assert _format("odd %d", ("x",), None) == "odd %d ('x',)"
