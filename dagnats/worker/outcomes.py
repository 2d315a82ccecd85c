"""What a handler's outcome becomes on the wire: the ``data`` of a result event.

Pure functions (no I/O) so the rules are easy to read and to test: how an output is
serialised, how an exception maps to a retryable or final failure, how a validation error
names its fields.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from dagnats.errors import NonRetryableError, RetryAfter
from dagnats.protocol import limits
from dagnats.protocol.durations import format_duration

T = TypeVar("T")

MAX_TRACEBACK_BYTES = 4096
MAX_VALIDATION_ERRORS = 5


@dataclass(frozen=True)
class Continue(Generic[T]):
    """Return ``Continue(value)`` from an agent-loop handler to run one more iteration."""

    value: T | None = None


class OutputError(Exception):
    """An output (or Continue value) that cannot be written as JSON."""


def to_json_value(value: Any, adapter: TypeAdapter[Any] | None, what: str) -> Any:
    """A JSON-compatible form of ``value``, through the declared type's adapter if known."""
    try:
        if adapter is not None:
            # warnings=False: a value that does not match the annotation is serialised by
            # its runtime type instead of spamming a warning per message.
            out = adapter.dump_python(value, mode="json", warnings=False)
        else:
            out = to_jsonable_python(value)
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise OutputError(
            f"{what} of type {type(value).__name__} cannot be serialised as JSON: {exc}"
        ) from exc
    try:
        # Deeper than the engine can read back: the run would never hear of this result.
        return limits.check_depth(out, what)
    except limits.LimitError as exc:
        raise OutputError(str(exc)) from exc


def completed_data(output: Any) -> dict[str, Any]:
    return {"output": output}


def continue_data(value: Any) -> dict[str, Any]:
    return {"value": value}


def failure_data(
    error: str,
    error_type: str,
    *,
    retryable: bool,
    retry_after_ns: int | None = None,
    tb: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"error": error, "error_type": error_type, "retryable": retryable}
    if retry_after_ns is not None:
        data["retry_after_ns"] = retry_after_ns
    if tb:
        data["traceback"] = tb
    return data


def exception_data(exc: BaseException) -> dict[str, Any]:
    """``step.failed`` data for an exception raised by a handler."""
    if isinstance(exc, NonRetryableError):
        return failure_data(str(exc), type(exc).__name__, retryable=False)
    if isinstance(exc, RetryAfter):
        return failure_data(
            str(exc), type(exc).__name__, retryable=True, retry_after_ns=exc.delay_ns
        )
    return failure_data(
        str(exc) or repr(exc), type(exc).__name__, retryable=True, tb=traceback_tail(exc)
    )


def timeout_data(step_id: str, timeout_ns: int) -> dict[str, Any]:
    return failure_data(
        f"step {step_id!r} exceeded its timeout of {format_duration(timeout_ns)}",
        "TimeoutError",
        retryable=True,
    )


def traceback_tail(exc: BaseException, limit: int = MAX_TRACEBACK_BYTES) -> str:
    """The last ``limit`` bytes of the formatted traceback: the frames nearest the error."""
    text = "".join(traceback.format_exception(exc))
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return "..." + raw[-(limit - 3) :].decode(errors="ignore")


def _loc(loc: tuple[int | str, ...]) -> str:
    out = "input"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validation_message(task: str, exc: ValidationError) -> str:
    """``invalid input for task 'review': input.repo: Field required; ...`` (first 5)."""
    errors = exc.errors(include_url=False)
    parts = [f"{_loc(tuple(e['loc']))}: {e['msg']}" for e in errors[:MAX_VALIDATION_ERRORS]]
    if len(errors) > MAX_VALIDATION_ERRORS:
        parts.append(f"... and {len(errors) - MAX_VALIDATION_ERRORS} more")
    return f"invalid input for task {task!r}: " + "; ".join(parts)
