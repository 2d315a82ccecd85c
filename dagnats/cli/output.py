"""Printing: JSON documents, tables, compact values, times, durations and events."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import typer

from dagnats.protocol import events as ev
from dagnats.protocol.events import Event

VALUE_LIMIT = 200
DATA_LIMIT = 120


_UTC_OFFSET = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?)\+00:00$")


def rfc3339(value: Any) -> Any:
    """``value`` with every timestamp in one form: RFC 3339, UTC, ``Z`` (a datetime, or a
    string some part wrote with ``+00:00`` or a space), in lists and dicts too."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, str):
        m = _UTC_OFFSET.match(value)
        return f"{m.group(1).replace(' ', 'T')}Z" if m else value
    if isinstance(value, dict):
        return {k: rfc3339(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rfc3339(v) for v in value]
    return value


def emit_json(doc: Any) -> None:
    """One JSON document on stdout; timestamps as RFC 3339 UTC with ``Z``."""
    typer.echo(json.dumps(rfc3339(doc), indent=2, default=_other, ensure_ascii=False))


def _other(value: Any) -> Any:
    converted = rfc3339(value)
    return converted if converted is not value else str(value)


def compact(value: Any, limit: int = VALUE_LIMIT) -> str:
    """One-line JSON, cut to ``limit`` characters with an ellipsis."""
    text = json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shorten(text: str, limit: int) -> str:
    """Text on one line, cut to ``limit`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    for row in [list(headers), *cells]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def fmt_time(value: Any, *, millis: bool = False) -> str:
    """UTC time as ``2026-05-09 07:35:25`` (``.123`` with ``millis``); ``-`` when absent."""
    t = parse_time(value)
    if t is None:
        return "-"
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{t.microsecond // 1000:03d}" if millis else text


def fmt_duration(ns: Any) -> str:
    """Nanoseconds as a Go-style duration: ``500ms``, ``1s``, ``1m30s``, ``2h``."""
    if not isinstance(ns, int | float) or isinstance(ns, bool):
        return "?"
    ms = int(ns) // 1_000_000
    if ms < 1000:
        return f"{ms}ms"
    seconds, millis = divmod(ms, 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs or millis:
        out += f"{secs}.{millis:03d}".rstrip("0").rstrip(".") + "s"
    return out


def error_text(value: Any) -> str:
    """An error as stored in events and state: a string or ``{"message": ...}``."""
    if isinstance(value, dict):
        return str(value.get("message") or value.get("error") or compact(value))
    return "" if value is None else str(value)


def outcome_text(status: str, step: str | None = None, error: str | None = None) -> str:
    """How a run ended, for ``Run <id> ...``: ``failed at step 'boom': boom always``."""
    if error and step:
        error = error.removeprefix(f"step '{step}' failed: ")
    if status == "compensated":
        where = f" after step '{step}' failed" if step else ""
    else:
        where = f" at step '{step}'" if step else ""
    reason = f": {error}" if error and status != "cancelled" else ""
    return f"{status}{where}{reason}"


def event_line(e: Event) -> str:
    """A line of ``dagnats run events``: time (UTC), type, step, attempt, short data."""
    step = e.step_id or "-"
    if e.item is not None:
        step += f"[{e.item}]"
    attempt = f"#{e.attempt}" if e.attempt else "-"
    data = compact(e.data, DATA_LIMIT) if e.data not in (None, {}) else ""
    when = fmt_time(e.ts, millis=True)
    return f"{when}  {e.type:<24} {step:<16} {attempt:<4} {data}".rstrip()


# Events ``--watch`` does not print: bookkeeping that would only add noise.
QUIET_EVENTS = frozenset({ev.WORKFLOW_STARTED, ev.STEP_STARTED, ev.TIMER_FIRED})


def _step_text(e: Event, d: dict[str, Any]) -> str | None:
    t = e.type
    attempt = f" (attempt {e.attempt})" if e.attempt else ""
    texts: dict[str, str] = {
        ev.STEP_COMPLETED: "completed",
        ev.STEP_CONTINUE: f"iteration {(e.iteration or 0) + 1} done, continuing",
        ev.STEP_FAILED: f"failed{attempt}: {error_text(d.get('error'))}",
        ev.STEP_RETRYING: f"retrying in {fmt_duration(d.get('delay_ns'))}",
        ev.STEP_SKIPPED: "skipped",
        ev.STEP_RECOVERED: f"recovered by {d.get('handler') or 'its on_failure handler'}",
        ev.WORKER_LOST: f"worker lost{attempt}",
        ev.STEP_SLEEP_STARTED: f"sleeping until {fmt_time(d.get('until'))}",
        ev.STEP_SLEEP_COMPLETED: "woke up",
        ev.STEP_WAIT_STARTED: f"waiting for event {d.get('event')}",
        ev.STEP_WAIT_MATCHED: "event received",
        ev.STEP_WAIT_TIMEOUT: "timed out waiting for the event",
        ev.STEP_APPROVAL_REQUESTED: (
            f"waiting for approval (dagnats approve {d.get('token')} | "
            f"dagnats reject {d.get('token')})"
        ),
        ev.STEP_APPROVED: "approved",
        ev.STEP_REJECTED: f"rejected: {d.get('reason') or 'no reason given'}",
        ev.STEP_MAP_STARTED: f"mapping {_count(d.get('items'))} items",
        ev.STEP_MAP_COMPLETED: "all items done",
        ev.STEP_CHILD_STARTED: f"started run {d.get('child_run_id')} of {d.get('workflow')}",
        ev.CHILD_COMPLETED: f"child run {d.get('child_run_id')} completed",
        ev.CHILD_FAILED: f"child run {d.get('child_run_id')} {d.get('status') or 'failed'}",
    }
    if t in texts:
        return texts[t]
    if t.startswith("step."):
        return t.removeprefix("step.")
    return None


def _count(items: Any) -> str:
    if isinstance(items, list):
        return str(len(items))
    return "?" if items is None else str(items)


def watch_line(e: Event) -> str | None:
    """One ``--watch`` line in the tutorial's style (``step.greet: completed``), or None."""
    if e.type in QUIET_EVENTS or e.type in ev.TERMINAL_RUN_EVENTS:
        return None
    d = e.data if isinstance(e.data, dict) else {}
    if e.type == ev.COMPENSATE_STEP:
        return f"step.{d.get('step')}: compensating with {d.get('handler')}"
    if e.type == ev.COMPENSATE_STARTED:
        steps = d.get("steps") or []
        return f"compensating {', '.join(map(str, steps)) or 'completed steps'}"
    if e.type == ev.WORKFLOW_PENDING:
        return f"Run {e.run_id} pending (waiting for a concurrency slot)"
    if e.type == ev.SIGNAL_RECEIVED:
        return f"signal {d.get('name')} received: {compact(d.get('data'), DATA_LIMIT)}"
    if e.type == ev.WORKFLOW_CANCEL_REQUESTED:
        return f"Run {e.run_id} cancel requested: {d.get('reason') or 'no reason given'}"
    step_text = _step_text(e, d) if e.step_id else None
    if step_text is not None:
        where = e.step_id if e.item is None else f"{e.step_id}[{e.item}]"
        return f"step.{where}: {step_text}"
    detail = compact(e.data, DATA_LIMIT) if e.data not in (None, {}) else ""
    return f"{e.type} {detail}".rstrip()
