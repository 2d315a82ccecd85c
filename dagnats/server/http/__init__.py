"""The HTTP API: a FastAPI (ASGI) app served by uvicorn (ADR 0008).

``create_app`` builds the app from an ``HttpContext`` and the features' ``Routes``;
``HttpGateway`` serves it inside a running event loop (``serve``, tests). Handlers take the
context with the ``Ctx`` annotation and document errors with ``error_responses``.
"""

from __future__ import annotations

from dagnats.server.http.app import Routes, create_app
from dagnats.server.http.bodies import MAX_BODY_BYTES, JsonBody, read_json
from dagnats.server.http.context import Ctx, HttpContext, http_context, service
from dagnats.server.http.errors import error_json, error_responses
from dagnats.server.http.server import HttpGateway

__all__ = [
    "MAX_BODY_BYTES",
    "Ctx",
    "HttpContext",
    "HttpGateway",
    "JsonBody",
    "Routes",
    "create_app",
    "error_json",
    "error_responses",
    "http_context",
    "read_json",
    "service",
]
