"""OpenTelemetry tracing, used only when ``opentelemetry-api`` is installed (``dagnats[otel]``).

One run is one trace: the seam stamps W3C ``traceparent`` (and ``tracestate``) from the
current span on every message it publishes (:func:`stamp`, called by ``msg_id`` and the API
request), and each role continues the trace of the message it handles (:func:`span` with the
message's headers). Spans go to the global tracer provider: configure an SDK (exporter,
sampler) in each process as usual. Until a process installs a tracer provider it makes no
spans and stamps nothing (so a process without an SDK does not carry a trace through).

Without the package :data:`ENABLED` is false and every function returns at once: no import,
no allocation beyond the caller's dict.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised in an environment without the extra
    ENABLED = False
else:
    ENABLED = True

TRACER_NAME = "dagnats"
TRACEPARENT = "traceparent"
# Span attributes (API.md "Tracing").
WORKFLOW = "dagnats.workflow"
RUN_ID = "dagnats.run_id"
STEP_ID = "dagnats.step_id"
ATTEMPT = "dagnats.attempt"
TASK = "dagnats.task"
EVENT_TYPE = "dagnats.event_type"

KINDS = ("internal", "producer", "consumer", "client", "server")


_installed = False  # once a provider is installed it stays (OpenTelemetry allows one)
_FROM_ENV = ENABLED and "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def active() -> bool:
    """Whether a tracer provider (an SDK) is installed: until one is, the API's provider is
    a proxy (or an explicit no-op) and dagnats makes no span at all.

    Called several times per event, so the common answer is cheap: no provider set in code
    (the API's module global) and none named in the environment (read once, at import;
    ``get_tracer_provider`` would read ``os.environ`` on every call).
    """
    global _installed
    if _installed:
        return True
    if not ENABLED:
        return False
    if not _FROM_ENV and getattr(trace, "_TRACER_PROVIDER", None) is None:
        return False
    provider = trace.get_tracer_provider()
    _installed = not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
    return _installed


def stamp(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the current span's ``traceparent`` added (in place, and returned)."""
    if ENABLED and active():
        propagate.inject(headers)
    return headers


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: Mapping[str, str] | None = None,
    kind: str = "internal",
) -> AbstractContextManager[Any]:
    """A span named ``name``, current inside the block; ``parent`` is the headers of the
    message being handled (its ``traceparent`` is the parent; without one, the current
    span is). An exception escaping the block marks the span as an error.

    ``with`` gives the span (``None`` when tracing is off). Off, it is one shared no-op context:
    the engine enters a span per applied event and building a generator-based context
    manager for nothing cost ~1.5 us each time.
    """
    if not active():
        return _OFF
    return _span(name, attributes, parent, kind)


@contextlib.contextmanager
def _span(
    name: str, attributes: Mapping[str, Any] | None, parent: Mapping[str, str] | None, kind: str
) -> Iterator[Any]:
    ctx = propagate.extract(parent) if parent and TRACEPARENT in parent else None
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        name,
        context=ctx,
        kind=getattr(SpanKind, kind.upper()),
        attributes=_attributes(attributes or {}),
        record_exception=True,
        set_status_on_exception=True,
    ) as current:
        yield current


def mark_failed(current: Any, message: str) -> None:
    """Mark a span as failed without an exception (a handler's failure result)."""
    if ENABLED and current is not None:
        current.set_status(Status(StatusCode.ERROR, message))


def annotate(attributes: Mapping[str, Any]) -> None:
    """Add attributes to the current span (known only once the span has begun)."""
    if active():
        trace.get_current_span().set_attributes(_attributes(attributes))
