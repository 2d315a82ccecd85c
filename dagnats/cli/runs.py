"""``dagnats run start|status|events|output|list|cancel|signal|delete``.

Every command that takes a run id takes an unambiguous prefix of it (8+ characters) or
``--last`` (see :mod:`dagnats.cli.run_ref`); retry, rerun, bulk and cancel-all are in
:mod:`dagnats.cli.redrive`.
"""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

import typer

from dagnats.cli.common import (
    DEFAULT_NATS_URL,
    CliError,
    InputFileOpt,
    JsonOpt,
    NatsUrlOpt,
    connect,
    execute,
    read_value,
)
from dagnats.cli.output import (
    VALUE_LIMIT,
    compact,
    emit_json,
    event_line,
    fmt_time,
    outcome_text,
    shorten,
    table,
)
from dagnats.cli.run_ref import LastOpt, RunRefArg, run_ref, since_time
from dagnats.cli.watch import start_and_watch, stuck_steps
from dagnats.client.waits import RunWaits, read_waits, waits_json
from dagnats.dag.machine.state import RunState, StepState
from dagnats.protocol.events import Event

app = typer.Typer(help="Start, inspect and control runs.", no_args_is_help=True)

VALUE_HELP = "JSON ('\"World\"', '{\"a\": 1}', 42); text that is not JSON is refused."


class RunStatusChoice(StrEnum):
    scheduled = "scheduled"
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    compensated = "compensated"


@app.command("start")
def start(
    workflow: Annotated[
        str, typer.Argument(metavar="WORKFLOW", help="Name of a registered workflow.")
    ],
    input_: Annotated[
        str | None, typer.Argument(metavar="INPUT", help="The run's input: " + VALUE_HELP)
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the run; exit 1 unless it completes.")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Starts with the same key return the same run."),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Choose the run id (1-128 of A-Za-z0-9_-).")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="RFC3339",
            help="Start it then (e.g. 2027-01-01T09:00:00Z): stored as scheduled until then.",
        ),
    ] = None,
    input_file: InputFileOpt = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Start a run of WORKFLOW with INPUT (JSON: a string is '"text"')."""
    run_input = read_value(input_, input_file, "INPUT")
    if at is not None and watch:
        raise CliError("--at and --watch do not go together: watch a scheduled run once it starts")

    async def main() -> int:
        async with connect(nats_url) as client:
            if watch:
                return await start_and_watch(
                    client,
                    workflow,
                    run_input,
                    idempotency_key=idempotency_key,
                    run_id=run_id,
                    json_out=json_out,
                )
            when: dict[str, Any] = {"run_at": at} if at is not None else {}
            handle = await client.start(
                workflow, run_input, idempotency_key=idempotency_key, run_id=run_id, **when
            )
            scheduled_at = getattr(handle, "run_at", None)
        if json_out:
            emit_json(
                {"run_id": handle.run_id, "workflow": workflow, "duplicate": handle.duplicate}
                | ({"status": "scheduled", "run_at": scheduled_at} if scheduled_at else {})
            )
        elif scheduled_at:
            typer.echo(f"Run {handle.run_id} scheduled for {fmt_time(scheduled_at)} UTC")
        else:
            again = " (an earlier start with this idempotency key)" if handle.duplicate else ""
            typer.echo(f"Run {handle.run_id} started{again}")
        return 0

    execute(main)


def _step_line(step_id: str, s: StepState) -> str:
    line = f"  {step_id}: {s.status}"
    if s.attempts > 1:
        line += f" (attempt {s.attempts})"
    if s.waiting:
        line += f" (waiting: {s.waiting})"
    if s.status == "completed" or (s.output is not None and s.status != "failed"):
        line += f" {compact(s.output, VALUE_LIMIT)}"
    elif s.error is not None:
        line += f": {shorten(s.error.message, VALUE_LIMIT)}"
    if s.items:
        done = sum(1 for i in s.items if i.status == "completed")
        line += f" [{done}/{len(s.items)} items done]"
    return line


def print_waits(waits: RunWaits) -> None:
    """What waiting steps need: an approval's token (and how to decide), a wake-up time."""
    for a in waits.approvals:
        said = f": {shorten(a.message, VALUE_LIMIT)}" if a.message else ""
        until = f", expires {fmt_time(a.expires_at)} UTC" if a.expires_at else ""
        typer.echo(f"Approval: step '{a.step_id}' waits for a decision{said}{until}")
        typer.echo(f"  dagnats approve {a.token} [DATA]  |  dagnats reject {a.token}")
    for w in waits.wakeups:
        what = "sleeps" if w.reason == "sleep" else "retries"
        typer.echo(f"Wakes: step '{w.step_id}' {what} at {fmt_time(w.at)} UTC")


def print_state(state: RunState) -> None:
    typer.echo(f"Run: {state.run_id}")
    typer.echo(
        f"Workflow: {state.workflow}" + (f" (revision {state.revision})" if state.revision else "")
    )
    typer.echo(f"Status: {state.status}")
    if state.error is not None:
        step = state.error.step_id
        where = f" (step {step})" if step and f"'{step}'" not in state.error.message else ""
        typer.echo(f"Error: {shorten(state.error.message, 4 * VALUE_LIMIT)}{where}")
    typer.echo(f"Started: {fmt_time(state.created_at)}")
    if state.finished_at is not None:
        typer.echo(f"Finished: {fmt_time(state.finished_at)}")
    typer.echo("Steps:")
    for step_id, s in state.steps.items():
        typer.echo(_step_line(step_id, s))


@app.command("status")
def status(
    run_id: RunRefArg = None,
    last: LastOpt = False,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Show a run's status, each step's status and output, a waiting approval's token and
    message, and when a sleeping (or backing-off) step wakes.

    With --json: the run's state plus "approvals", "wakeups" and "stuck" lists.
    """

    async def main() -> None:
        async with connect(nats_url) as client:
            state = await client.get_run(await run_ref(client, run_id, last))
            stuck = await stuck_steps(client, state)
            waits = await read_waits(client, state)
        if json_out:
            doc = state.model_dump(mode="json", exclude_none=True) | waits_json(waits)
            emit_json(doc | {"stuck": [asdict(u) | {"message": u.message} for u in stuck]})
        else:
            print_state(state)
            print_waits(waits)
            for u in stuck:
                typer.echo(f"Stuck: {u.message}")

    execute(main)


@app.command("events")
def events(
    run_id: RunRefArg = None,
    last: LastOpt = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Print a run's history, one event per line: time (UTC), type, step, attempt, data."""

    async def main() -> None:
        history: list[Event] = []
        async with connect(nats_url) as client:
            rid = await run_ref(client, run_id, last)  # a clear error for an unknown id
            if follow:
                async for e in client.run(rid).events(follow=True):
                    history.append(e)
                    if not json_out:
                        typer.echo(event_line(e))
            else:
                raw = await client.call("run.events", {"run_id": rid})
                history = [Event.model_validate(r) for r in raw]  # "seq" included
                if not json_out:
                    for e in history:
                        typer.echo(event_line(e))
        if json_out:
            emit_json(
                [e.model_dump(mode="json", exclude_none=True) | {"seq": e.seq} for e in history]
            )

    execute(main)


@app.command("output")
def output(
    run_id: RunRefArg = None,
    last: LastOpt = False,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Print a completed run's output as JSON (exit 1 if it has not completed).

    With --json the document is {"run_id": ..., "status": "completed", "output": ...}.
    """

    async def main() -> None:
        async with connect(nats_url) as client:
            rid = await run_ref(client, run_id, last)
            state = await client.get_run(rid)
        if state.status != "completed":
            if not state.terminal:
                raise CliError(f"run '{rid}' is {state.status} (no output yet)")
            err = state.error
            step = err.step_id if err else state.failed_step
            text = outcome_text(state.status, step, err.message if err else None)
            raise CliError(f"run '{rid}' {text}")
        if json_out:
            emit_json({"run_id": rid, "status": state.status, "output": state.output})
        else:
            emit_json(state.output)

    execute(main)


@app.command("list")
def list_(
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only this workflow.")] = None,
    status_: Annotated[
        RunStatusChoice | None, typer.Option("--status", help="Only runs in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most N runs.")] = 50,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only runs created since: a duration back (2h, 30m) or RFC 3339."
        ),
    ] = None,
    scheduled: Annotated[
        bool,
        typer.Option("--scheduled", help="Runs waiting for their --at time."),
    ] = False,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """List runs, newest first by creation time."""

    async def main() -> None:
        after = since_time(since)
        async with connect(nats_url) as client:
            rows = await client.list_runs(
                workflow=workflow,
                status=status_.value if status_ else None,
                limit=limit,
                since=after,
                scheduled=scheduled,
            )
        if json_out:
            emit_json([asdict(r) for r in rows])
        elif not rows:
            typer.echo("No scheduled runs." if scheduled else "No runs.")
        elif scheduled:
            table(
                ["RUN ID", "WORKFLOW", "STARTS (UTC)", "CREATED (UTC)"],
                [[r.run_id, r.workflow, fmt_time(r.run_at), fmt_time(r.created_at)] for r in rows],
            )
        else:
            table(
                ["RUN ID", "WORKFLOW", "STATUS", "CREATED (UTC)", "FINISHED (UTC)"],
                [
                    [
                        r.run_id,
                        r.workflow,
                        r.status,
                        fmt_time(r.created_at),
                        fmt_time(r.finished_at),
                    ]
                    for r in rows
                ],
            )

    execute(main)


@app.command("cancel")
def cancel(
    run_id: RunRefArg = None,
    last: LastOpt = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the run.")] = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Ask the engine to cancel a run (a no-op for a run that already ended)."""

    async def main() -> None:
        async with connect(nats_url) as client:
            rid = await run_ref(client, run_id, last)
            cancelled = await client.cancel(rid, reason)
            ended = None if cancelled else (await client.get_run(rid)).status
        if json_out:
            emit_json({"run_id": rid, "cancelled": cancelled, "status": ended})
        elif cancelled:
            typer.echo(f"Run {rid} cancel requested")
        else:
            typer.echo(f"Run {rid} already ended ({ended}); nothing to cancel")

    execute(main)


@app.command("signal")
def signal(
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN_ID NAME [DATA]",
            help="The run (id or 8+ character prefix; leave it out with --last), the signal "
            "name as in ctx.wait_for_signal(NAME), and its DATA: " + VALUE_HELP,
            show_default=False,
        ),
    ],
    last: LastOpt = False,
    input_file: InputFileOpt = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Send a signal (with DATA) to a run."""
    want = "NAME [DATA]" if last else "RUN_ID NAME [DATA]"
    if not (len(args) >= 1 + (not last)) or len(args) > 2 + (not last):
        raise typer.BadParameter(f"expected {want}, got {len(args)} argument(s)")
    run_id = None if last else args[0]
    name, *rest = args if last else args[1:]
    value = read_value(rest[0] if rest else None, input_file, "DATA")

    async def main() -> None:
        async with connect(nats_url) as client:
            rid = await run_ref(client, run_id, last)
            await client.send_signal(rid, name, value)
        if json_out:
            emit_json({"run_id": rid, "signal": name, "sent": True})
        else:
            typer.echo(f"Signal {name} sent to run {rid}")

    execute(main)


@app.command("delete")
def delete(
    run_id: RunRefArg = None,
    last: LastOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even if the run has not ended.")
    ] = False,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Delete a run's snapshot and history."""

    async def main() -> None:
        async with connect(nats_url) as client:
            rid = await run_ref(client, run_id, last)
            await client.delete_run(rid, force=force)
        if json_out:
            emit_json({"deleted": rid})
        else:
            typer.echo(f"Deleted run {rid}")

    execute(main)
