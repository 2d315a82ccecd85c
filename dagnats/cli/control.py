"""``dagnats status``, ``workers``, ``event publish``, ``approve`` and ``reject``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from dagnats import protocol
from dagnats._nats.kvscan import get_entry, list_keys, open_bucket
from dagnats.cli.common import (
    DEFAULT_NATS_URL,
    EXIT_USAGE,
    CliError,
    InputFileOpt,
    JsonOpt,
    NatsUrlOpt,
    connect,
    describe,
    execute,
    read_value,
)
from dagnats.cli.output import emit_json, table
from dagnats.client import Client
from dagnats.client.approvals import approval_problems
from dagnats.client.diagnosis import SystemStatus, system_status
from dagnats.errors import ApiError

MAX_WORKERS = 1000
RUN_COUNT_LIMIT = 1000

event_app = typer.Typer(help="Publish external events.", no_args_is_help=True)


def _server_version(client: Client) -> str:
    v = client.nc.connected_server_version
    try:
        text = f"{v.major}.{v.minor}.{v.patch}"
        return f"{text}-{v.prerelease}" if v.prerelease else text
    except (ValueError, TypeError):
        return "unknown"


async def _jetstream_ok(client: Client) -> tuple[bool, str | None]:
    try:
        await client.js.account_info()
    except Exception as exc:  # noqa: BLE001 - a health probe: any failure is the answer
        return False, describe(exc)
    return True, None


def status(nats_url: NatsUrlOpt = DEFAULT_NATS_URL, json_out: JsonOpt = False) -> None:
    """Check NATS, JetStream and the dagnats API; count workflows and runs; show engines,
    workers, queue depths, dead letters and queued tasks no worker serves."""

    async def main() -> int:
        doc: dict[str, Any] = {"nats_url": nats_url}
        async with connect(nats_url) as client:
            doc["server_version"] = _server_version(client)
            doc["jetstream"], js_error = await _jetstream_ok(client)
            try:
                doc["workflows"] = len(await client.list_workflows())
                runs = await client.list_runs(limit=RUN_COUNT_LIMIT)
                doc["runs"] = len(runs)
                doc["runs_capped"] = len(runs) >= RUN_COUNT_LIMIT
                doc["api"], api_error = True, None
            except ApiError as exc:
                doc["api"], api_error = False, str(exc)
            system = await system_status(client.js) if doc["jetstream"] else None
        if system is not None:
            doc |= system.to_json()
        healthy = bool(doc["jetstream"] and doc["api"])
        if json_out:
            emit_json(doc | {"ok": healthy})
            return 0 if healthy else 1
        typer.echo(f"NATS:       {nats_url} (nats-server {doc['server_version']})")
        typer.echo(f"JetStream:  {'ok' if doc['jetstream'] else f'unavailable: {js_error}'}")
        typer.echo(f"API:        {'ok' if doc['api'] else f'unavailable: {api_error}'}")
        if doc["api"]:
            capped = "+" if doc["runs_capped"] else ""
            typer.echo(f"Workflows:  {doc['workflows']}")
            typer.echo(f"Runs:       {doc['runs']}{capped}")
        if system is not None:
            print_system(system)
        return 0 if healthy else 1

    execute(main)


def print_system(system: SystemStatus) -> None:
    """Engines, workers, queue depths, dead letters and tasks nobody serves."""
    typer.echo(f"Engines:    {len(system.engines)}")
    for e in system.engines:
        held = ",".join(str(p) for p in e.partitions) or "none"
        typer.echo(f"  {e.engine_id} (pid {e.pid} on {e.host}): partitions {held}")
    pending = sum(p.pending for p in system.partitions)
    unheld = [str(p.partition) for p in system.partitions if p.holder is None]
    typer.echo(
        f"Partitions: {len(system.partitions)}, {pending} events pending"
        + (f"; not held by any engine: {','.join(unheld)}" if unheld else "")
    )
    tasks = sorted({str(t) for w in system.workers for t in w.get("tasks") or []})
    served = f" serving {', '.join(tasks)}" if tasks else ""
    typer.echo(f"Workers:    {len(system.workers)}{served}")
    queued = ", ".join(f"{q.subject} {q.messages}" for q in system.queues)
    typer.echo(f"Queues:     {queued or 'empty'}")
    typer.echo(f"Dead letters: {system.dead_letters}")
    for line in system.unserved_queues:
        typer.echo(f"Stuck:      {line}")


def workers(nats_url: NatsUrlOpt = DEFAULT_NATS_URL, json_out: JsonOpt = False) -> None:
    """List live workers (their heartbeats in the `workers` bucket, 60 s TTL)."""

    async def main() -> None:
        async with connect(nats_url) as client:
            rows = await _read_workers(client)
        if json_out:
            emit_json(rows)
        elif not rows:
            typer.echo("No workers.")
        else:
            table(
                ["ID", "NAME", "TASKS", "GROUPS", "HOST", "PID", "INFLIGHT"],
                [
                    [
                        w.get("id"),
                        w.get("name"),
                        ",".join(map(str, w.get("tasks") or [])),
                        ",".join(map(str, w.get("groups") or [])) or "-",
                        w.get("host"),
                        w.get("pid"),
                        w.get("inflight"),
                    ]
                    for w in rows
                ],
            )

    execute(main)


async def _read_workers(client: Client) -> list[dict[str, Any]]:
    kv = await open_bucket(client.js, protocol.KV_WORKERS)
    if kv is None:
        raise CliError(
            f"no '{protocol.KV_WORKERS}' bucket on this NATS (has `dagnats serve` run against it?)"
        )
    keys = sorted(await list_keys(kv))
    out: list[dict[str, Any]] = []
    for key in keys[:MAX_WORKERS]:
        entry = await get_entry(kv, key)
        if entry is None or not entry.value:
            continue  # expired between the listing and the read
        try:
            value = json.loads(entry.value)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append({"id": key} | value)
    return out


@event_app.command("publish")
def publish(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Event name, e.g. payment.received.")],
    data: Annotated[
        str | None, typer.Argument(metavar="DATA", help="JSON (a string is '\"text\"').")
    ] = None,
    input_file: InputFileOpt = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Publish an external event (wakes wait_for_event steps, matches cancel_on rules)."""
    value = read_value(data, input_file, "DATA")

    async def main() -> None:
        async with connect(nats_url) as client:
            seq = await client.publish_event(name, value)
        if json_out:
            emit_json({"event": name, "seq": seq})
        else:
            typer.echo(f"Published event {name} (seq {seq})")

    execute(main)


def approve(
    token: Annotated[str, typer.Argument(metavar="TOKEN", help="The token of the approval step.")],
    data: Annotated[
        str | None, typer.Argument(metavar="DATA", help="JSON (a string is '\"text\"').")
    ] = None,
    input_file: InputFileOpt = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Approve a waiting approval step (each token works once).

    DATA becomes the approval step's output, which the steps after it get as their input:
    if one of them would refuse it (its task's typed input, or its sub-workflow's
    input_schema), nothing is approved and the error says which step needs what.
    """
    value = read_value(data, input_file, "DATA")

    async def main() -> None:
        async with connect(nats_url) as client:
            problems = await approval_problems(client, token, value)
            if problems:
                given = "no DATA" if value is None else "this DATA"
                raise CliError(
                    f"not approved: with {given} the run would fail after the approval: "
                    + "; ".join(problems),
                    EXIT_USAGE,
                )
            await client.approve(token, value)
        if json_out:
            emit_json({"approved": True})
        else:
            typer.echo("Approved")

    execute(main)


def reject(
    token: Annotated[str, typer.Argument(metavar="TOKEN", help="The token of the approval step.")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, recorded in the run.")
    ] = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Reject a waiting approval step (each token works once)."""

    async def main() -> None:
        async with connect(nats_url) as client:
            await client.reject(token, reason)
        if json_out:
            emit_json({"rejected": True})
        else:
            typer.echo("Rejected")

    execute(main)
