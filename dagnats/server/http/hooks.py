"""Public trigger routes: webhooks (``POST /hooks/<path>``) and HTTP triggers (``/api/<path>``).

Public because each checks its own secret (``X-Signature-256: sha256=<hex HMAC-SHA256>`` of
the body) instead of the bearer token: a webhook's sender knows the shared secret, not the
API's token. Paths are looked up in the trigger index (kept fresh by a KV watch), so a
request costs no KV read.

- webhook: 202 ``{"run_id"}`` (``{"run_id": null, "held": true}`` when debounced), 401 on a
  missing or bad signature, 404 unknown path, 405 not POST, 413 over 1 MiB.
- HTTP trigger: the run's ``respond`` step answers (see :mod:`dagnats.server.http_calls`);
  every answer carries ``X-Dagnats-Run-Id``; 405 when the path is served for other methods.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from dagnats.dag.definition.triggers import HTTP_METHODS, WEBHOOK_MAX_BODY_BYTES, TriggerDef
from dagnats.errors import ApiError
from dagnats.server.http.context import Ctx, service
from dagnats.server.http_calls import RUN_ID_HEADER, Answer, HttpCalls
from dagnats.server.trigger_ops import TriggerOps

router = APIRouter()

SIGNATURE_HEADER = "X-Signature-256"
MAX_HEADERS_KEPT = 64


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """``header`` is ``sha256=<hex HMAC-SHA256(secret, body)>`` (compared in constant time)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def sign(secret: str, body: bytes) -> str:
    """The ``X-Signature-256`` value for ``body`` (for senders and tests)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _webhook_data(body: bytes) -> Any:
    """The JSON body, or (not JSON) the text as it came."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", errors="replace")


@router.api_route(
    "/hooks/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def webhook(ctx: Ctx, path: str, request: Request) -> JSONResponse:
    triggers: TriggerOps = service(ctx, "triggers")
    full = f"/hooks/{path}"
    trigger = next(
        (t for t in triggers.index.values() if t.webhook and t.webhook.path == full), None
    )
    if trigger is None or trigger.webhook is None:
        raise ApiError(f"no webhook at {full}", code=404)
    if request.method != "POST":
        raise ApiError(f"webhook {full} takes POST, not {request.method}", code=405)
    body = await request.body()
    if len(body) > WEBHOOK_MAX_BODY_BYTES:
        raise ApiError(f"webhook body over {WEBHOOK_MAX_BODY_BYTES} bytes", code=413)
    secret = trigger.webhook.secret
    if secret and not signature_ok(secret, body, request.headers.get(SIGNATURE_HEADER)):
        raise ApiError(f"missing or bad {SIGNATURE_HEADER} for webhook {full}", code=401)
    if not trigger.enabled:
        raise ApiError(f"webhook {full} (trigger {trigger.id!r}) is disabled", code=404)
    data = _webhook_data(body)
    if trigger.debounce is not None:
        await service(ctx, "trigger_service").debouncer.hold(trigger, "webhook", data)
        return JSONResponse({"run_id": None, "held": True}, status_code=202)
    run_id = await triggers.start(trigger, "webhook", data)
    return JSONResponse({"run_id": run_id}, status_code=202, headers={RUN_ID_HEADER: run_id})


def _find_http(triggers: TriggerOps, method: str, full: str) -> TriggerDef:
    on_path = [t for t in triggers.index.values() if t.http and t.http.path == full]
    if not on_path:
        raise ApiError(f"no HTTP trigger at {full}", code=404)
    for t in on_path:
        if t.http is not None and t.http.method == method:
            return t
    methods = sorted(t.http.method for t in on_path if t.http is not None)
    raise ApiError(f"{full} takes {', '.join(methods)}, not {method}", code=405)


def _request_data(request: Request, body: bytes) -> dict[str, Any]:
    """The HTTP envelope's ``data``: ``{method, path, query, headers, body}`` (body base64)."""
    headers = dict(list(request.headers.items())[:MAX_HEADERS_KEPT])
    headers.pop("authorization", None)  # never into the run's input (the history keeps it)
    return {
        "method": request.method,
        "path": request.url.path,
        "query": dict(request.query_params),
        "headers": headers,
        "body": base64.b64encode(body).decode(),
    }


def _response(answer: Answer) -> Response:
    headers = dict(answer.headers)
    if answer.run_id:
        headers[RUN_ID_HEADER] = answer.run_id
    return Response(
        content=answer.body,
        status_code=answer.status,
        media_type=answer.content_type,
        headers=headers,
    )


@router.api_route("/api/{path:path}", methods=list(HTTP_METHODS), include_in_schema=False)
async def http_trigger(ctx: Ctx, path: str, request: Request) -> Response:
    triggers: TriggerOps = service(ctx, "triggers")
    calls: HttpCalls = service(ctx, "http_calls")
    full = f"/api/{path}"
    trigger = _find_http(triggers, request.method, full)
    spec = trigger.http
    if spec is None:  # _find_http returns HTTP triggers only
        raise ApiError(f"no HTTP trigger at {full}", code=404)
    body = await request.body()
    if len(body) > spec.max_body_bytes:
        raise ApiError(f"{full}: body over its max_body_bytes ({spec.max_body_bytes})", code=413)
    if spec.secret and not signature_ok(spec.secret, body, request.headers.get(SIGNATURE_HEADER)):
        raise ApiError(f"missing or bad {SIGNATURE_HEADER} for {full}", code=401)
    if not trigger.enabled:
        raise ApiError(f"{full} (trigger {trigger.id!r}) is disabled", code=404)
    idem = request.headers.get(spec.idempotency_header) if spec.idempotency_header else None
    answer = await calls.call(trigger, _request_data(request, body), idem)
    return _response(answer)


def http_trigger_paths(triggers: TriggerOps) -> dict[str, Any]:
    """OpenAPI path items of the enabled HTTP triggers: each documents its workflow's
    ``input_schema`` (the request's JSON body, as the run's ``data.body`` gets it) and
    ``output_schema`` (the answer), with the error answers of request/respond."""
    paths: dict[str, Any] = {}
    for t in sorted(triggers.index.values(), key=lambda t: t.id):
        if t.http is None or not t.enabled:
            continue
        in_schema, out_schema = triggers.schemas.get(t.workflow_id, (None, None))
        body, out = in_schema or {}, out_schema or {}
        error = {"content": {"application/json": {"schema": {"type": "object"}}}}
        operation = {
            "summary": f"HTTP trigger {t.id}: starts workflow {t.workflow_id}",
            "tags": ["http triggers"],
            "responses": {
                "200": {
                    "description": "The run's respond step answered",
                    "content": {"application/json": {"schema": out}},
                },
                "500": {"description": "workflow_failed / workflow_no_response", **error},
                "503": {"description": "workflow_cancelled", **error},
                "504": {"description": "workflow_timeout (the run goes on)", **error},
            },
        }
        if t.http.method != "GET":
            operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
        paths.setdefault(t.http.path, {})[t.http.method.lower()] = operation
    return paths
