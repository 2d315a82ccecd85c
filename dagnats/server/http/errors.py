"""Errors as JSON: every failure of the HTTP API is ``{"error": {"kind", "message"}}`` with
the status :func:`dagnats.server.api.error_code` gives the micro service too.

Framework errors (no route, wrong method, a path or query parameter that does not parse)
get the same envelope, so a client never has to handle two error formats, and bad input is
always a 4xx naming the field, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dagnats.errors import DagnatsError
from dagnats.server.api import error_code
from dagnats.server.http.models import ErrorBody

log = logging.getLogger(__name__)

_DESCRIPTIONS = {
    400: "Bad request: malformed JSON, or a definition or value that breaks a rule",
    401: "Missing or wrong bearer token",
    404: "No such workflow, run, token or route",
    405: "Method not allowed on this path",
    409: "Conflict with the current state (run id taken, token used, run still running)",
    413: "Request body over the limit",
    422: "A field is missing, of the wrong type, or rejected by the input_schema",
    503: "NATS or JetStream unavailable, or the server busy",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (plus 422 and 503, which any
    route can answer). Giving 422 here also replaces FastAPI's own validation schema, which
    this API never sends."""
    wanted = sorted({*codes, 422, 503})
    return {c: {"model": ErrorBody, "description": _DESCRIPTIONS[c]} for c in wanted}


def error_json(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"kind": kind, "message": message}}, status_code=status)


def describe_validation(errors: Any) -> str:
    """``field 'a.b': message; ...`` from pydantic's error list (bounded to 10 entries)."""
    parts = []
    for err in list(errors)[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"field '{loc}': {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


async def _dagnats_error(request: Request, exc: Exception) -> JSONResponse:
    status = error_code(exc)
    response = error_json(status, type(exc).__name__, str(exc))
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _value_error(request: Request, exc: Exception) -> JSONResponse:
    return error_json(400, "ApiError", str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return error_json(422, "ApiError", describe_validation(errors))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    headers = getattr(exc, "headers", None)
    if status == 404:
        body = error_json(404, "NotFoundError", f"no route for {request.url.path}")
    elif status == 405:
        body = error_json(405, "ApiError", f"{request.method} not allowed on {request.url.path}")
    else:
        detail = getattr(exc, "detail", None)
        body = error_json(status, "ApiError", str(detail or "error"))
    if headers:
        body.headers.update(headers)
    return body


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("HTTP %s %s failed", request.method, request.url.path, exc_info=exc)
    return error_json(500, "ApiError", f"internal error: {type(exc).__name__}")


def install_error_handlers(app: FastAPI) -> None:
    # DagnatsError first in meaning: DefinitionError is also a ValueError; Starlette picks
    # the handler of the most specific class in the exception's MRO, so both may be listed.
    app.add_exception_handler(DagnatsError, _dagnats_error)
    app.add_exception_handler(ValueError, _value_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Request bodies are validated by JsonBody, which answers 422 itself: a pydantic error
    # that gets this far is a response that does not fit its model, a bug of ours.
    app.add_exception_handler(ValidationError, _internal_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
