"""Tracing mode of a benchmark process, from ``DAGNATS_BENCH_TRACING`` (set on import).

- ``absent``: dagnats's tracing is switched off as when ``opentelemetry`` cannot be
  imported (the same code path; the package itself stays importable because FastAPI
  imports it);
- ``off`` (default): the API is installed, no SDK: the global no-op provider;
- ``on``: the SDK records every span and exports it in batches to an exporter that drops
  them, so the figure is dagnats's cost (spans, attributes, ``traceparent`` headers), not an
  exporter's network.

Imported first by each benchmark process, before the roles start.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

MODE = os.environ.get("DAGNATS_BENCH_TRACING", "off")
MODES = ("absent", "off", "on")

if MODE not in MODES:
    raise SystemExit(f"DAGNATS_BENCH_TRACING must be one of {', '.join(MODES)}, not {MODE!r}")

if MODE == "absent":
    from dagnats.telemetry import tracing

    tracing.ENABLED = False
elif MODE == "on":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DropExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
