"""``dagnats dlq list|replay``: tasks that exhausted their retries (stream ``DEAD_LETTERS``).

Both go through the API service (``dlq.list``, ``dlq.replay``); a replay resumes the run
from the dead-lettered step and removes the letter, so it is not replayed twice.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dagnats.cli.common import DEFAULT_NATS_URL, CliError, JsonOpt, NatsUrlOpt, connect, execute
from dagnats.cli.output import emit_json, error_text, fmt_time, shorten, table
from dagnats.cli.run_ref import LastOpt, run_ref

app = typer.Typer(help="Inspect the dead-letter queue.", no_args_is_help=True)

MAX_LIMIT = 1000
ERROR_WIDTH = 80


RunOpt = Annotated[
    str | None, typer.Option("--run", help="That run's dead letters (id or 8+ char prefix).")
]


@app.command("list")
def list_(
    run: RunOpt = None,
    last: LastOpt = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="At most N, oldest first.")
    ] = 100,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """List dead letters: tasks whose step failed after its last attempt."""

    async def main() -> None:
        async with connect(nats_url) as client:
            rid = await run_ref(client, run, last) if run or last else None
            out = await client.call("dlq.list", {"run_id": rid, "limit": limit})
        rows, more = out["dead_letters"], out["more"]
        if json_out:
            emit_json({"dead_letters": rows, "more": more})
            return
        if not rows:
            typer.echo("No dead letters.")
            return
        table(
            ["SEQ", "TIME (UTC)", "RUN", "STEP", "TASK", "ATTEMPTS", "ERROR"],
            [
                [
                    r["seq"],
                    fmt_time(r["time"]),
                    r["run_id"],
                    r["step_id"] if r["item"] is None else f"{r['step_id']}[{r['item']}]",
                    r["task"],
                    r["attempts"],
                    shorten(error_text(r["error"]), ERROR_WIDTH),
                ]
                for r in rows
            ],
        )
        if more:
            typer.echo(f"(more dead letters exist; raise --limit above {limit})", err=True)

    execute(main)


@app.command("replay")
def replay(
    seq: Annotated[
        int | None,
        typer.Argument(metavar="SEQ", help="The dead letter's SEQ (see dlq list).", min=1),
    ] = None,
    run: RunOpt = None,
    last: LastOpt = False,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Run a dead-lettered step again (SEQ, or every letter of --run / --last): its run
    resumes from there, and the letters are removed."""

    async def main() -> None:
        if (seq is None) == (run is None and not last):
            raise CliError("give a dead letter SEQ or --run ID / --last (one of them)")
        async with connect(nats_url) as client:
            body: dict[str, object] = {"seq": seq}
            if seq is None:
                body = {"run_id": await run_ref(client, run, last)}
            out = await client.call("dlq.replay", body, timeout_s=20.0)
        if json_out:
            emit_json(out)
            return
        seqs = ", ".join(str(n) for n in out["dead_letters_removed"]) or "none"
        typer.echo(f"Run {out['run_id']} resumed (retry {out['retry']}; letters removed: {seqs})")

    execute(main)
