"""``dagnats run retry|rerun|bulk|cancel-all``: redrive runs and act on many at once."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from dagnats.cli.common import DEFAULT_NATS_URL, CliError, JsonOpt, NatsUrlOpt, connect, execute
from dagnats.cli.output import emit_json, table
from dagnats.cli.run_ref import LastOpt, RunRefArg, run_ref
from dagnats.cli.runs import app
from dagnats.client.redrive import MAX_BATCH

WatchOpt = Annotated[
    bool,
    typer.Option("--watch", "-w", help="Wait for the run's outcome; exit 1 unless it completes."),
]
COMMANDS = ("retry", "rerun", "bulk", "cancel-all")  # added to ``dagnats run``
WAIT_S = 3600.0  # --watch gives up after an hour


async def _outcome(handle: Any, json_out: bool) -> int:
    """Wait for the run; print its result (0) or why it did not complete (1)."""
    try:
        output = await handle.result(timeout=WAIT_S)
    except TimeoutError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - RunFailedError / RunCancelledError: the outcome
        if json_out:
            emit_json({"run_id": handle.run_id, "ok": False, "error": str(exc)})
        else:
            typer.echo(f"Run {handle.run_id}: {exc}", err=True)
        return 1
    if json_out:
        emit_json({"run_id": handle.run_id, "ok": True, "output": output})
    else:
        typer.echo(json.dumps(output, default=str))
    return 0


@app.command("retry")
def retry(
    run_id: RunRefArg = None,
    last: LastOpt = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the run.")] = None,
    watch: WatchOpt = False,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Resume a failed or cancelled run in place from its failed steps.

    Completed steps keep their outputs and do not run again.
    """

    async def main() -> int:
        async with connect(nats_url) as client:
            rid = await run_ref(client, run_id, last)
            out = await client.call("run.retry", {"run_id": rid, "reason": reason}, timeout_s=20.0)
            if watch:
                return await _outcome(client.run(rid), json_out)
        if json_out:
            emit_json(out)
        else:
            steps = ", ".join(out["steps"]) or "none"
            typer.echo(f"Run {rid} retried (retry {out['retry']}; steps again: {steps})")
        return 0

    execute(main)


@app.command("rerun")
def rerun(
    run_id: RunRefArg = None,
    last: LastOpt = False,
    watch: WatchOpt = False,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Start a new run of the same workflow revision with the same input."""

    async def main() -> int:
        async with connect(nats_url) as client:
            rid = await run_ref(client, run_id, last)
            handle = await client.rerun(rid)
            if watch:
                return await _outcome(handle, json_out)
        if json_out:
            emit_json({"run_id": handle.run_id, "rerun_of": rid})
        else:
            typer.echo(f"Run {handle.run_id} started (a rerun of {rid})")
        return 0

    execute(main)


def read_inputs(path: Path) -> list[Any]:
    """One JSON value per non-empty line (JSON Lines), at most ``MAX_BATCH``."""
    try:
        text = path.read_text() if str(path) != "-" else typer.get_text_stream("stdin").read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    inputs: list[Any] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if len(inputs) == MAX_BATCH:
            raise CliError(f"{path}: more than {MAX_BATCH} inputs; split the file")
        try:
            inputs.append(json.loads(line))
        except ValueError as exc:
            raise CliError(f"{path}:{n}: not JSON: {exc}") from exc
    return inputs


@app.command("bulk")
def bulk(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW", help="A registered workflow.")],
    from_file: Annotated[
        Path,
        typer.Option(
            "--from-file", help="JSON Lines: one run input per line (- for stdin), <= 1000."
        ),
    ],
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Start one run of WORKFLOW per input line; exit 1 if any input was refused."""

    async def main() -> int:
        inputs = read_inputs(from_file)
        async with connect(nats_url, timeout_s=60.0) as client:
            results = await client.start_many(workflow, inputs)
        refused = [r for r in results if not r.ok]
        if json_out:
            emit_json({"results": [asdict(r) for r in results], "refused": len(refused)})
        else:
            table(
                ["LINE", "RUN ID", "RESULT"],
                [
                    [
                        r.index + 1,
                        r.run_id or "-",
                        "started"
                        if r.ok and not r.duplicate
                        else "duplicate"
                        if r.ok
                        else (r.error or {}).get("message", "refused"),
                    ]
                    for r in results
                ],
            )
            typer.echo(f"{len(results) - len(refused)} started, {len(refused)} refused")
        return 1 if refused else 0

    execute(main)


@app.command("cancel-all")
def cancel_all(
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Runs of this workflow.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs in this status (scheduled, pending, running)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_BATCH, help="At most N runs per call.")
    ] = MAX_BATCH,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the runs it would cancel.")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in each run.")] = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Cancel every unfinished run that matches --workflow / --status."""

    async def main() -> None:
        if not workflow and not status:
            raise CliError("give --workflow and/or --status: cancel-all takes a filter")
        async with connect(nats_url, timeout_s=60.0) as client:
            out = await client.cancel_runs(
                workflow=workflow, status=status, limit=limit, dry_run=dry_run, reason=reason
            )
        if json_out:
            emit_json(asdict(out))
            return
        for rid in out.run_ids:
            typer.echo(rid)
        verb = "would cancel" if dry_run else "cancelled"
        typer.echo(f"{verb} {len(out.run_ids)} run(s)", err=True)
        if out.more:
            typer.echo(f"(more runs match; run it again to go past {limit})", err=True)

    execute(main)
