"""``dagnats trigger create|list|show|enable|disable|delete|fire|history|test``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from dagnats.cli.common import (
    DEFAULT_NATS_URL,
    CliError,
    JsonOpt,
    NatsUrlOpt,
    connect,
    execute,
    fail,
    parse_value,
)
from dagnats.cli.output import emit_json, fmt_time, table
from dagnats.dag.definition.triggers import CronSpec, TriggerDef, parse_trigger
from dagnats.errors import DefinitionError
from dagnats.protocol.durations import DurationError, parse_duration

app = typer.Typer(help="Cron, subject, webhook and HTTP triggers.", no_args_is_help=True)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="The trigger's id.")]
MAX_TEST_COUNT = 100


def _kind_spec(
    cron: str | None,
    tz: str,
    backfill: bool,
    subject: str | None,
    webhook: str | None,
    secret: str | None,
    http: str | None,
    method: str,
    timeout: str,
) -> dict[str, Any]:
    given = [k for k, v in (("--cron", cron), ("--subject", subject), ("--webhook", webhook),
                            ("--http", http)) if v]  # fmt: skip
    if len(given) != 1:
        raise CliError(
            "give exactly one of --cron, --subject, --webhook, --http"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if cron:
        return {"cron": {"expression": cron, "timezone": tz, "backfill": backfill}}
    if subject:
        return {"subject": {"subject": subject}}
    if webhook:
        return {"webhook": {"path": webhook, **({"secret": secret} if secret else {})}}
    try:
        timeout_ms = parse_duration(timeout) // 1_000_000
    except DurationError as exc:
        raise CliError(f"--timeout: {exc}") from exc
    spec = {"path": http, "method": method, "timeout_ms": timeout_ms}
    return {"http": {**spec, **({"secret": secret} if secret else {})}}


@app.command("create")
def create(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW", help="The workflow it starts.")],
    cron: Annotated[str | None, typer.Option("--cron", help="'*/5 * * * *' (5 fields).")] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of --cron (UTC).")] = "",
    backfill: Annotated[
        bool, typer.Option("--backfill", help="Fire minutes missed in downtime (<= 100).")
    ] = False,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Each NATS message on it starts a run.")
    ] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="/hooks/PATH (POST).")] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="HMAC-SHA256 secret (X-Signature-256).")
    ] = None,
    http: Annotated[
        str | None, typer.Option("--http", help="/api/PATH: answered by the respond step.")
    ] = None,
    method: Annotated[str, typer.Option("--method", help="HTTP method of --http.")] = "POST",
    timeout: Annotated[str, typer.Option("--timeout", help="--http wait (then 504).")] = "30s",
    debounce: Annotated[
        str | None, typer.Option("--debounce", help="Hold starts until quiet this long.")
    ] = None,
    trigger_id: Annotated[str | None, typer.Option("--id", help="Choose the id.")] = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Create a trigger for WORKFLOW (exactly one of --cron, --subject, --webhook, --http)."""
    raw: dict[str, Any] = {"workflow_id": workflow, "source": "cli"}
    try:
        raw |= _kind_spec(cron, tz, backfill, subject, webhook, secret, http, method, timeout)
    except CliError as exc:
        fail(str(exc))
    if debounce:
        raw["debounce"] = {"period": debounce}
    if trigger_id:
        raw["id"] = trigger_id
    try:
        trigger = parse_trigger(raw)  # one line naming the field, before connecting
    except DefinitionError as exc:
        fail(str(exc))

    async def main() -> None:
        async with connect(nats_url) as client:
            tid = await client.create_trigger(trigger)
        if json_out:
            emit_json(trigger.to_json())
        else:
            typer.echo(f"Trigger {tid} created ({trigger.kind}) for workflow {workflow}")

    execute(main)


def _what(t: TriggerDef) -> str:
    if t.cron:
        return f"cron '{t.cron.expression}'" + (f" {t.cron.timezone}" if t.cron.timezone else "")
    if t.subject:
        return f"subject {t.subject.subject}"
    if t.webhook:
        return f"POST {t.webhook.path}" + (" (signed)" if t.webhook.secret else "")
    if t.http:
        return f"{t.http.method} {t.http.path}"
    return "-"


@app.command("list")
def list_(
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only this workflow.")] = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """List triggers."""

    async def main() -> None:
        async with connect(nats_url) as client:
            rows = await client.list_triggers(workflow)
        if json_out:
            emit_json([t.to_json() for t in rows])
        elif not rows:
            typer.echo("No triggers.")
        else:
            table(
                ["ID", "WORKFLOW", "KIND", "WHAT", "ENABLED"],
                [[t.id, t.workflow_id, t.kind, _what(t), "yes" if t.enabled else "no"]
                 for t in rows],
            )  # fmt: skip

    execute(main)


@app.command("show")
def show(trigger_id: IdArg, nats_url: NatsUrlOpt = DEFAULT_NATS_URL) -> None:
    """Show a trigger (as JSON)."""

    async def main() -> None:
        async with connect(nats_url) as client:
            emit_json(await client.call("trigger.get", {"id": trigger_id}))

    execute(main)


def _simple(op: str, done: str) -> Any:
    def command(trigger_id: IdArg, nats_url: NatsUrlOpt = DEFAULT_NATS_URL) -> None:
        async def main() -> None:
            async with connect(nats_url) as client:
                await client.call(op, {"id": trigger_id})
            typer.echo(f"Trigger {trigger_id} {done}")

        execute(main)

    return command


app.command("enable", help="Enable a trigger.")(_simple("trigger.enable", "enabled"))
app.command("disable", help="Disable a trigger (it keeps its definition).")(
    _simple("trigger.disable", "disabled")
)
app.command("delete", help="Delete a trigger.")(_simple("trigger.delete", "deleted"))


@app.command("fire")
def fire(
    trigger_id: IdArg,
    data: Annotated[str | None, typer.Argument(metavar="DATA", help="The envelope's data.")] = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Fire a trigger now, by hand (trigger "manual" in the run's input)."""

    async def main() -> None:
        async with connect(nats_url) as client:
            run = await client.fire_trigger(trigger_id, parse_value(data))
        if json_out:
            emit_json({"run_id": run.run_id, "workflow": run.workflow})
        else:
            typer.echo(f"Run {run.run_id} started by trigger {trigger_id}")

    execute(main)


@app.command("history")
def history(
    trigger_id: IdArg, nats_url: NatsUrlOpt = DEFAULT_NATS_URL, json_out: JsonOpt = False
) -> None:
    """A trigger's recent fires, newest first (at most 50)."""

    async def main() -> None:
        async with connect(nats_url) as client:
            rows = await client.trigger_history(trigger_id)
        if json_out:
            emit_json(rows)
        elif not rows:
            typer.echo(f"Trigger {trigger_id} has not fired yet.")
        else:
            table(
                ["TIME (UTC)", "KIND", "RUN ID"],
                [[fmt_time(r.get("ts")), r.get("kind"), r.get("run_id") or "-"] for r in rows],
            )

    execute(main)


@app.command("test")
def test(
    expression: Annotated[str, typer.Argument(metavar="CRON", help="'0 9 * * 1-5'.")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone (UTC).")] = "",
    count: Annotated[int, typer.Option("--count", min=1, max=MAX_TEST_COUNT)] = 5,
    json_out: JsonOpt = False,
) -> None:
    """Offline: the next COUNT fire times of a cron expression (no server needed)."""
    try:
        spec = CronSpec.model_validate({"expression": expression, "timezone": tz})
    except ValueError as exc:
        msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        fail(str(msg).removeprefix("Value error, "))
    times = spec.next_fires(datetime.now(UTC), count)
    if json_out:
        emit_json([t.isoformat() for t in times])
        return
    for t in times:
        typer.echo(f"{t.isoformat()}  ({t.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC)")
