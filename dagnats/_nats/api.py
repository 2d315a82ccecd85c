"""A request to the dagnats API service from a role that is not the client (worker).

The client has its own richer ``Client.call`` (large replies by reference); this is the
small path a worker's control plane needs: JSON in, JSON out. Both decode the service's
error replies with :func:`raise_service_error`, which raises the dagnats exception the
reply's kind names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dagnats._nats.connection import request
from dagnats._nats.types import NatsClient
from dagnats.errors import (
    ApiError,
    ApprovalError,
    DagnatsError,
    DefinitionError,
    InputValidationError,
    NotFoundError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from dagnats.protocol.names import API_SUBJECT_PREFIX

_ERRORS: dict[str, type[DagnatsError]] = {
    cls.__name__: cls
    for cls in (
        DefinitionError,
        InputValidationError,
        NotFoundError,
        WorkflowNotFoundError,
        RunNotFoundError,
        ApprovalError,
    )
}


def raise_service_error(headers: Mapping[str, str], data: bytes) -> None:
    """Raise the dagnats exception an API error reply names (nothing for a good reply):
    the one decoder of the service's ``{"error": {kind, message}}`` for every caller."""
    if "Nats-Service-Error-Code" not in headers:
        return
    try:
        err = json.loads(data)["error"]
        kind, message = str(err["kind"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        kind, message = "ApiError", headers.get("Nats-Service-Error", "API error")
    cls = _ERRORS.get(kind)
    if cls is not None:
        raise cls(message)
    raise ApiError(message, code=int(headers.get("Nats-Service-Error-Code", "500")))


async def api_request(nc: NatsClient, op: str, body: dict[str, Any], *, timeout_s: float) -> Any:
    """Call API operation ``op`` (e.g. ``run.start``) and return its JSON answer."""
    data = json.dumps(body, default=str).encode()
    try:
        resp = await request(nc, f"{API_SUBJECT_PREFIX}.{op}", data, timeout_s=timeout_s)
    except TimeoutError as exc:
        raise ApiError(f"API request {op} timed out after {timeout_s}s", code=504) from exc
    if resp is None:
        raise ApiError("no dagnats API service is answering on this NATS", code=503)
    raise_service_error(resp.headers or {}, resp.data)
    return json.loads(resp.data) if resp.data else None
