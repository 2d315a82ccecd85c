"""What a route handler may use: the NATS connection, the API operations, readiness.

The app keeps one :class:`HttpContext` in ``app.state.dagnats``; a handler takes it with
``ctx: HttpContext = Depends(http_context)`` (the ``Ctx`` alias), so routes written in other
modules (triggers, redrive, the console) need nothing but this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from dagnats._nats.types import NatsClient
from dagnats.server.operations import Operations


@dataclass
class HttpContext:
    nc: NatsClient
    """The process's NATS connection."""
    ops: Operations
    """The API operations (opened), the same the ``dagnats.api`` micro service runs."""
    ready: Callable[[], bool] = lambda: True
    """Whether the process has started every part (``/ready``)."""
    services: dict[str, Any] = field(default_factory=dict)
    """Services other features hand to their routes (the trigger service, the bridge...),
    by name; a feature reads its own with :func:`service`."""


def http_context(request: Request) -> HttpContext:
    ctx: HttpContext = request.app.state.dagnats
    return ctx


Ctx = Annotated[HttpContext, Depends(http_context)]
"""A handler parameter typed ``Ctx`` receives the app's :class:`HttpContext`."""


def service(ctx: HttpContext, name: str) -> Any:
    """The service registered under ``name``; 503 (not a crash) when it is not running."""
    from dagnats.errors import ApiError

    try:
        return ctx.services[name]
    except KeyError:
        raise ApiError(f"the {name} service is not running in this process", code=503) from None
