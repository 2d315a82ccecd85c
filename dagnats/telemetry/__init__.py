"""Telemetry: Prometheus metrics (``metrics``) and OpenTelemetry tracing (``tracing``).

Sits below the seam (``_nats`` stamps ``traceparent`` on what it publishes) and above the
pure layers; imports ``prometheus_client``, and ``opentelemetry`` only when it is installed.
"""
