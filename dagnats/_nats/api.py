"""A request to the dagnats API service from a role that is not the client (worker).

The client has its own richer ``Client.call`` (large replies by reference); this is the
small path a worker's control plane needs: JSON in, JSON out, the service's error kind
raised as the dagnats exception it names.
"""

from __future__ import annotations

import json
from typing import Any

from dagnats._nats.connection import request
from dagnats._nats.types import NatsClient
from dagnats.errors import (
    ApiError,
    DagnatsError,
    DefinitionError,
    InputValidationError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from dagnats.protocol.names import API_SUBJECT_PREFIX

_ERRORS: dict[str, type[DagnatsError]] = {
    cls.__name__: cls
    for cls in (DefinitionError, InputValidationError, WorkflowNotFoundError, RunNotFoundError)
}


async def api_request(nc: NatsClient, op: str, body: dict[str, Any], *, timeout_s: float) -> Any:
    """Call API operation ``op`` (e.g. ``run.start``) and return its JSON answer."""
    data = json.dumps(body, default=str).encode()
    try:
        resp = await request(nc, f"{API_SUBJECT_PREFIX}.{op}", data, timeout_s=timeout_s)
    except TimeoutError as exc:
        raise ApiError(f"API request {op} timed out after {timeout_s}s", code=504) from exc
    if resp is None:
        raise ApiError("no dagnats API service is answering on this NATS", code=503)
    headers = resp.headers or {}
    if "Nats-Service-Error-Code" in headers:
        try:
            err = json.loads(resp.data)["error"]
            kind, message = str(err["kind"]), str(err["message"])
        except (ValueError, KeyError, TypeError):
            kind, message = "ApiError", headers.get("Nats-Service-Error", "API error")
        cls = _ERRORS.get(kind)
        if cls is not None:
            raise cls(message)
        raise ApiError(message, code=int(headers.get("Nats-Service-Error-Code", "500")))
    return json.loads(resp.data) if resp.data else None
