"""The ASGI app: FastAPI routes, JSON errors, the body limit, bearer auth, OpenAPI 3.1.

:func:`create_app` builds it from an :class:`HttpContext` and the features' routers. A
feature adds routes by writing a ``fastapi.APIRouter`` in its own module and handing it to
:func:`create_app` as a :class:`Routes` (``serve`` collects them: see docs/http.md)::

    router = APIRouter(tags=["triggers"])

    @router.get("/triggers", responses=error_responses())
    async def list_triggers(ctx: Ctx) -> list[TriggerInfo]:
        return await service(ctx, "triggers").list()

    create_app(ctx, routers=[Routes(router)])                 # behind the bearer token
    create_app(ctx, routers=[Routes(hooks, public=True)])     # checks its own signature
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from dagnats._version import __version__
from dagnats.server.http import apidocs, health, rest
from dagnats.server.http.auth import BearerAuth
from dagnats.server.http.bodies import BODY_MODELS, BodyLimit
from dagnats.server.http.context import HttpContext
from dagnats.server.http.errors import error_responses, install_error_handlers


@dataclass(frozen=True)
class Routes:
    """A feature's router and whether it is public (no bearer token asked)."""

    router: APIRouter
    public: bool = False


class HeadAsGet:
    """Answer ``HEAD`` on every ``GET`` route: the app sees a GET; the server (uvicorn, whose
    own copy of the scope still says HEAD) sends the headers without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)


def create_app(
    ctx: HttpContext,
    *,
    token: str | None = None,
    routers: Sequence[Routes] = (),
) -> FastAPI:
    """The HTTP API; with ``token``, every non-public route wants ``Authorization: Bearer``."""
    app = FastAPI(
        title="dagnats",
        version=__version__,
        summary="DAG workflows on NATS JetStream: REST API",
        openapi_url="/openapi.json",
        docs_url=None,  # served from the package by ``apidocs`` (FastAPI's uses a CDN)
        redoc_url=None,
    )
    apidocs.install(app, openapi_url="/openapi.json")
    app.state.dagnats = ctx
    install_error_handlers(app)
    guard = [Depends(BearerAuth(token))] if token else []
    denied = error_responses(401) if token else {}
    app.include_router(health.router)
    app.include_router(rest.router, dependencies=guard, responses=denied)
    for routes in routers:
        if routes.public:
            app.include_router(routes.router)
        else:
            app.include_router(routes.router, dependencies=guard, responses=denied)
    app.add_middleware(BodyLimit)
    app.add_middleware(HeadAsGet)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi(app)
        # Routes that come and go with records (HTTP triggers) are added per request, by
        # the "openapi_paths" service: a callable returning OpenAPI path items.
        dynamic = ctx.services.get("openapi_paths")
        if dynamic is None:
            return app.openapi_schema
        return {**app.openapi_schema, "paths": {**app.openapi_schema["paths"], **dynamic()}}

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request-body models that :class:`JsonBody` documents
    by reference (FastAPI only collects the models of its own body parameters)."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
        openapi_version=app.openapi_version,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, model in sorted(BODY_MODELS.items()):
        body = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        for def_name, definition in body.pop("$defs", {}).items():
            schemas.setdefault(def_name, definition)
        schemas.setdefault(name, body)
    return doc
