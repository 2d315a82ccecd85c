"""Trigger definitions (the DagNats ``TriggerDef``): what starts a workflow by itself.

``{id, workflow_id, enabled, debounce?, source?}`` plus exactly one of ``cron``, ``subject``,
``webhook``, ``http`` (DAGNATS-FORMAT.md "Triggers"). Pure: cron expressions are checked
with croniter (a maintained cron library), time zones with the standard ``zoneinfo``.
Every problem is a :class:`~dagnats.errors.DefinitionError` naming the trigger and field.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dagnats.errors import DefinitionError
from dagnats.protocol.durations import Duration
from dagnats.protocol.names import DOTTED_NAME_PATTERN, MAX_NAME_LEN, NAME_PATTERN

TRIGGER_KINDS: tuple[str, ...] = ("cron", "subject", "webhook", "http")
HTTP_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_BACKFILL_MINUTES = 100
WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
HTTP_MAX_BODY_BYTES = 1024 * 1024
HTTP_MAX_TIMEOUT_MS = 300_000
MIN_HTTP_SECRET_LEN = 16
MAX_TRIGGERS_PER_WORKFLOW_FILE = 32
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def cron_zone(timezone: str) -> ZoneInfo:
    """The IANA zone (``""`` = UTC), or ValueError naming it."""
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r} (use an IANA name)") from exc


class CronSpec(_Model):
    expression: str = Field(min_length=1, max_length=256)
    """Five fields (minute hour day-of-month month day-of-week), POSIX semantics."""
    timezone: str = ""
    """IANA time zone the expression is read in; ``""`` is UTC."""
    backfill: bool = False
    """After downtime, fire the missed minutes (at most 100)."""

    @field_validator("expression")
    @classmethod
    def _parses(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"cron expression {v!r} must have 5 fields, got {len(v.split())}")
        if not croniter.is_valid(v):
            raise ValueError(f"cron expression {v!r} does not parse")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        cron_zone(v)
        return v

    def next_fires(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times after ``after`` (aware, in the trigger's zone)."""
        it = croniter(self.expression, after.astimezone(cron_zone(self.timezone)))
        return [it.get_next(datetime) for _ in range(count)]


class SubjectSpec(_Model):
    subject: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.*>$-]+$")
    """Core NATS subject; each message on it (JSON body) starts a run."""


def _check_path(v: str, prefix: str) -> str:
    if not v.startswith(prefix) or len(v) <= len(prefix):
        raise ValueError(f"path {v!r} must start with {prefix!r} and name something after it")
    if not set(v) <= _PATH_CHARS or "//" in v or "/../" in v + "/" or v.endswith("/"):
        raise ValueError(f"path {v!r}: use letters, digits and - _ . / (no '//', '..', end '/')")
    return v


class WebhookSpec(_Model):
    path: str = Field(max_length=256)
    """``/hooks/...``: the URL path the webhook is POSTed to."""
    secret: str | None = Field(default=None, max_length=256)
    """With a secret, ``X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`` is required."""

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _check_path(v, "/hooks/")


class HttpSpec(_Model):
    path: str = Field(max_length=256)
    """``/api/...``: the URL path of the endpoint."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    timeout_ms: int = Field(default=30_000, ge=1, le=HTTP_MAX_TIMEOUT_MS)
    """How long the request waits for the run's ``respond`` step (then 504, the run goes on)."""
    max_body_bytes: int = Field(default=HTTP_MAX_BODY_BYTES, ge=0, le=HTTP_MAX_BODY_BYTES)
    secret: str | None = Field(default=None, min_length=MIN_HTTP_SECRET_LEN, max_length=256)
    """Optional: requests must carry ``X-Signature-256`` like webhooks."""
    idempotency_header: str | None = Field(default=None, max_length=128)
    """A header whose repeated value gets the first run's answer."""

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _check_path(v, "/api/")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class DebounceSpec(_Model):
    period: Duration
    """Starts are held until this long passes with no new one."""
    timeout: Duration | None = None
    """...but at most this long after the first held one."""
    key: str | None = Field(default=None, max_length=256)
    """A dot path into the trigger's data: one hold per value (``None``: one per trigger)."""


class TriggerDef(_Model):
    id: str = Field(min_length=1, max_length=MAX_NAME_LEN, pattern=NAME_PATTERN)
    workflow_id: str = Field(min_length=1, max_length=MAX_NAME_LEN, pattern=DOTTED_NAME_PATTERN)
    enabled: bool = True
    source: str | None = Field(default=None, max_length=64)
    """Who made it: ``api``, ``cli``, ``workflow`` (listed in a workflow file) ..."""
    cron: CronSpec | None = None
    subject: SubjectSpec | None = None
    webhook: WebhookSpec | None = None
    http: HttpSpec | None = None
    debounce: DebounceSpec | None = None

    @property
    def kind(self) -> str:
        for kind in TRIGGER_KINDS:
            if getattr(self, kind) is not None:
                return kind
        raise ValueError("a trigger without a kind")  # parse_trigger refuses these

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def parse_trigger(raw: Any, *, default_workflow: str | None = None) -> TriggerDef:
    """A checked TriggerDef from JSON data, or DefinitionError naming the trigger and field."""
    if not isinstance(raw, Mapping):
        raise DefinitionError(f"a trigger must be a JSON object, got {type(raw).__name__}")
    data = dict(raw)
    if default_workflow is not None:
        given = data.setdefault("workflow_id", default_workflow)
        if given != default_workflow:
            raise DefinitionError(
                f"trigger {data.get('id', '?')!r}: workflow_id {given!r} differs from the "
                f"workflow {default_workflow!r} it is listed in",
                field="workflow_id",
            )
    label = data.get("id", "(new)")
    data.setdefault("id", f"trg-{secrets.token_hex(6)}")
    try:
        trigger = TriggerDef.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "trigger"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        raise DefinitionError(f"trigger {label!r}: {where}: {msg}", field=where) from exc
    kinds = [k for k in TRIGGER_KINDS if getattr(trigger, k) is not None]
    if len(kinds) != 1:
        raise DefinitionError(
            f"trigger {label!r}: needs exactly one of {', '.join(TRIGGER_KINDS)}, "
            f"got {', '.join(kinds) or 'none'}",
            field="kind",
        )
    if trigger.debounce is not None and kinds[0] in ("cron", "http"):
        raise DefinitionError(
            f"trigger {label!r}: debounce does not apply to a {kinds[0]} trigger "
            "(cron fires once a minute at most; an HTTP request waits for its own run)",
            field="debounce",
        )
    return trigger


def split_triggers(source: Mapping[str, Any]) -> tuple[dict[str, Any], list[TriggerDef]]:
    """A workflow file's definition without its ``triggers``, and those triggers, checked.

    Triggers listed without an id get ``<workflow>-<kind>-<n>``, so registering the same
    file again updates them instead of adding more.
    """
    body = dict(source)
    raw = body.pop("triggers", None) or []
    name = body.get("name")
    if not isinstance(raw, list):
        raise DefinitionError("'triggers' must be a list of trigger objects", field="triggers")
    if len(raw) > MAX_TRIGGERS_PER_WORKFLOW_FILE:
        raise DefinitionError(
            f"'triggers' lists {len(raw)} triggers; at most {MAX_TRIGGERS_PER_WORKFLOW_FILE}",
            field="triggers",
        )
    out = []
    for n, item in enumerate(raw):
        if isinstance(item, Mapping) and "id" not in item and isinstance(name, str):
            kind = next((k for k in TRIGGER_KINDS if k in item), "trigger")
            item = {**item, "id": f"{name}-{kind}-{n}"}
        if isinstance(item, Mapping):
            item = {"source": "workflow", **item}
        out.append(parse_trigger(item, default_workflow=name if isinstance(name, str) else None))
    return body, out
