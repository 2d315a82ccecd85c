"""The API service: NATS micro service ``dagnats`` on ``dagnats.api.>``.

Discoverable with ``$SRV.PING``. Every request is handed to its own task, because a micro
endpoint otherwise handles one request at a time; past ``MAX_INFLIGHT_REQUESTS`` tasks a
request is refused at once (503). Errors travel as micro error headers plus a JSON body
``{"error": {"kind", "message"}}`` that the client turns back into exceptions. A reply too
large for one NATS message is stored in the ``payloads`` object store and answered with a
reference ``{"$dagnats_ref": key, "size": n}``, which the client resolves.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dagnats import protocol
from dagnats._nats.payloads import REF, Payloads
from dagnats._nats.types import NUID, NatsClient, Request, Service, add_service
from dagnats._version import __version__
from dagnats.errors import (
    ApiError,
    ApprovalError,
    DagnatsError,
    DefinitionError,
    InputValidationError,
    NatsUnavailableError,
    NotFoundError,
)
from dagnats.protocol import limits
from dagnats.server.bulk import Bulk
from dagnats.server.operations import Operations
from dagnats.server.redrive import Redrive
from dagnats.server.trigger_ops import TriggerOps
from dagnats.telemetry import tracing

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_INFLIGHT_REQUESTS = 1024
MAX_REPLY_BYTES = 900 * 1024  # larger replies travel by reference (max_payload is 1 MiB)
MAX_ERROR_HEADER = 1000  # characters of the message repeated in the micro error header


def error_code(exc: Exception) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, DefinitionError):
        return 400
    if isinstance(exc, InputValidationError):
        return 422
    if isinstance(exc, ApprovalError):
        return 409
    if isinstance(exc, ApiError):
        return exc.code
    if isinstance(exc, NatsUnavailableError):
        return 503
    return 500


class ApiService:
    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.ops = Operations(nc)
        self.redrive = Redrive(self.ops)
        self.bulk = Bulk(self.ops)
        self.triggers = TriggerOps(self.ops)
        self._svc: Service | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._payloads = Payloads(nc.jetstream())
        self._nuid = NUID()

    def endpoints(self) -> dict[str, Handler]:
        o, i, r, b = self.ops, self.ops.interactions, self.redrive, self.bulk
        t = self.triggers
        return {
            "workflow.register": o.register_workflow,
            "workflow.list": o.list_workflows,
            "workflow.get": o.get_workflow,
            "workflow.delete": o.delete_workflow,
            "run.start": o.start_run,
            "run.get": o.get_run,
            "run.list": o.list_runs,
            "run.events": o.run_events,
            "run.cancel": o.cancel_run,
            "run.delete": o.delete_run,
            "run.resolve": r.resolve,
            "run.retry": r.retry_run,
            "run.rerun": r.rerun,
            "run.start_many": b.start_many,
            "run.cancel_many": b.cancel_many,
            "dlq.list": r.list_dead_letters,
            "dlq.replay": r.replay_dead_letter,
            "run.signal": i.signal_run,
            "event.publish": i.publish_event,
            "approval.approve": i.approve,
            "approval.reject": i.reject,
            "trigger.create": t.create,
            "trigger.list": t.list_all,
            "trigger.get": t.show,
            "trigger.enable": t.enable,
            "trigger.disable": t.disable,
            "trigger.delete": t.delete,
            "trigger.fire": t.fire,
            "trigger.history": t.history,
        }

    async def start(self) -> None:
        await self.ops.open()
        await self.triggers.open()
        self._svc = await add_service(
            self.nc,
            name="dagnats",
            version=__version__,
            description="dagnats workflow engine API",
        )
        group = self._svc.add_group(name="dagnats.api")
        for subject, fn in self.endpoints().items():
            await group.add_endpoint(
                name=subject.replace(".", "-"), subject=subject, handler=self._wrap(fn)
            )
        log.info("API service started on dagnats.api.>")

    @property
    def running(self) -> bool:
        """Whether the micro service is registered (between start and stop)."""
        return self._svc is not None

    async def stop(self) -> None:
        if self._svc is not None:
            await self._svc.stop()
            self._svc = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        await self.triggers.close()
        await self.ops.close()

    def _wrap(self, fn: Handler) -> Callable[[Request], Awaitable[None]]:
        async def handler(req: Request) -> None:
            inflight = len(self._tasks)
            if inflight >= MAX_INFLIGHT_REQUESTS:
                # Refuse at once rather than queue without bound (the caller may retry).
                await self._error(req, 503, "ApiError", f"API busy ({inflight} requests in flight)")
                return
            t = asyncio.create_task(self._serve(fn, req))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

        return handler

    async def _serve(self, fn: Handler, req: Request) -> None:
        # Bounded by the busy check in _wrap: at most MAX_INFLIGHT_REQUESTS of these.
        op = req.subject.removeprefix(f"{protocol.API_SUBJECT_PREFIX}.")
        with tracing.span(f"dagnats.api {op}", parent=req.headers, kind="server"):
            await self._answer(fn, req)

    async def _answer(self, fn: Handler, req: Request) -> None:
        try:
            body = limits.loads(req.data, "request body") if req.data else {}
            if not isinstance(body, dict):
                raise ApiError("request body must be a JSON object", code=400)
            result = await fn(body)
            await req.respond(await self._reply(result))
        except DagnatsError as exc:  # before ValueError: DefinitionError & co. are both
            await self._error(req, error_code(exc), type(exc).__name__, str(exc))
        except ValueError as exc:
            await self._error(req, 400, "ApiError", str(exc))
        except Exception as exc:
            log.exception("API request on %s failed", req.subject)
            await self._error(req, 500, "ApiError", f"internal error: {exc}")

    async def _reply(self, result: Any) -> bytes:
        data = json.dumps(result, default=str).encode()
        if len(data) <= MAX_REPLY_BYTES:
            return data
        key = f"replies/{self._nuid.next().decode()}"
        obj = await self._payloads.store()
        await obj.put(key, data)
        return json.dumps({REF: key, "size": len(data)}).encode()

    async def _error(self, req: Request, code: int, kind: str, message: str) -> None:
        # Bounded, headers included: nats-server closes the connection (for good, in
        # nats-py) on a message over max_payload, and that connection is shared.
        message = limits.bounded_text(message)
        data = json.dumps({"error": {"kind": kind, "message": message}}).encode()
        header = " ".join(message.split())[:MAX_ERROR_HEADER]
        await req.respond_error(str(code), header, data=data)
