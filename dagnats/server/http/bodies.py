"""Request bodies: a size limit for every route, and JSON read whatever the Content-Type.

The limit is an ASGI middleware, so it holds for routes other features add (webhooks,
triggers) as much as for REST: a declared ``Content-Length`` over the limit is refused before
anything is read, and a chunked body is cut off as soon as it passes the limit.

Bodies are parsed here rather than by FastAPI's body parameters, because FastAPI ignores a
body that is not labelled ``application/json`` (``curl -d`` sends form encoding) and would
then report the field missing. :class:`JsonBody` parses, validates against a pydantic model
and documents the model in OpenAPI.
"""

from __future__ import annotations

import json
from typing import Any, Generic, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dagnats.errors import ApiError
from dagnats.protocol import limits
from dagnats.server.http.errors import describe_validation, error_json

MAX_BODY_BYTES = 1024 * 1024

M = TypeVar("M", bound=BaseModel)

# Every model a JsonBody documents: the OpenAPI generator adds them to the components.
BODY_MODELS: dict[str, type[BaseModel]] = {}


class BodyLimit:
    """Buffer the request body up to ``limit_bytes`` (413 past it), then hand it on."""

    def __init__(self, app: ASGIApp, limit_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit_bytes = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: let the app see the disconnect
            size += len(message.get("body", b""))
            if size > self.limit_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the disconnect (SSE, long polls)

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_json(
            413, "ApiError", f"request body over the limit of {self.limit_bytes} bytes"
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (h11/httptools) refuses these before we run
    return None


async def read_json(request: Request) -> Any:
    """The body as JSON (``None`` when empty); 400 naming the position when it is not."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_constant=limits.not_json_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(f"invalid JSON body: {exc}", code=400) from exc


class JsonBody(Generic[M]):
    """A dependency: the body validated as ``model`` (422 naming the field otherwise).

    ``route_doc()`` is the ``openapi_extra`` that documents it::

        START = JsonBody(StartRunRequest)

        @router.post("/runs", openapi_extra=START.route_doc())
        async def start(body: StartRunRequest = Depends(START)) -> ...
    """

    def __init__(self, model: type[M], *, required: bool = True) -> None:
        self.model = model
        self.required = required
        BODY_MODELS[model.__name__] = model

    async def __call__(self, request: Request) -> M:
        data = await read_json(request)
        if data is None and not self.required:
            data = {}
        if data is None:
            raise ApiError(f"a JSON body ({self.model.__name__}) is required", code=400)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            raise ApiError(describe_validation(exc.errors()), code=422) from exc

    def route_doc(self) -> dict[str, Any]:
        return request_body_doc(
            {"$ref": f"#/components/schemas/{self.model.__name__}"}, required=self.required
        )


def request_body_doc(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body with this schema."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }
