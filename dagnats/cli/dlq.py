"""``dagnats dlq list``: tasks that exhausted their retries (stream ``DEAD_LETTERS``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer

from dagnats import protocol
from dagnats._nats.types import NatsClient
from dagnats.cli.common import DEFAULT_NATS_URL, CliError, JsonOpt, NatsUrlOpt, connect, execute
from dagnats.cli.output import emit_json, error_text, fmt_time, shorten, table
from dagnats.protocol.messages import DeadLetterMessage

app = typer.Typer(help="Inspect the dead-letter queue.", no_args_is_help=True)

MAX_LIMIT = 1000
ERROR_WIDTH = 80


@dataclass
class DeadLetter:
    seq: int
    time: str | None
    run_id: str | None
    step_id: str | None
    task: str | None
    attempts: int | None
    error: str
    input: Any = None
    item: int | None = None


async def read_dead_letters(
    nc: NatsClient, *, run_id: str | None, limit: int, timeout_s: float = 5.0
) -> tuple[list[DeadLetter], bool]:
    """The oldest ``limit`` dead letters (of ``run_id``), and whether more exist.

    One batched direct get (``next_by_subj`` with a wildcard), bounded by ``limit + 1``.
    """
    subject = protocol.dead_letter_subject(run_id, ">") if run_id else "dead.>"
    request = {"seq": 1, "next_by_subj": subject, "batch": limit + 1}
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    out: list[DeadLetter] = []
    more = False
    try:
        await nc.publish(
            f"$JS.API.DIRECT.GET.{protocol.DLQ_STREAM}", json.dumps(request).encode(), reply=inbox
        )
        while True:
            try:
                msg = await sub.next_msg(timeout=timeout_s)
            except TimeoutError as exc:
                raise CliError(
                    f"reading {protocol.DLQ_STREAM} timed out (does the stream exist on this NATS?)"
                ) from exc
            hdrs = msg.headers or {}
            status = hdrs.get("Status")
            if status == "404" and not out:
                break  # nothing on this subject
            if status is not None:  # 204: end of the batch (or 404 after some messages)
                if status not in ("204", "404"):
                    desc = hdrs.get("Description", "")
                    raise CliError(f"reading {protocol.DLQ_STREAM} failed: {status} {desc}".strip())
                break
            if len(out) == limit:
                more = True
                continue
            out.append(_parse(msg.data, hdrs))
    finally:
        await sub.unsubscribe()
    return out, more


def _parse(data: bytes, hdrs: dict[str, str]) -> DeadLetter:
    try:
        body = DeadLetterMessage.model_validate_json(data)
    except ValueError:
        body = DeadLetterMessage()
    return DeadLetter(
        seq=int(hdrs.get("Nats-Sequence", "0")),
        time=body.ts.isoformat() if body.ts else hdrs.get("Nats-Time-Stamp"),
        run_id=body.run_id,
        step_id=body.step_id,
        task=body.task,
        attempts=body.attempts,
        error=error_text(body.error),
        input=body.input,
        item=body.item,
    )


@app.command("list")
def list_(
    run: Annotated[str | None, typer.Option("--run", help="Only this run's dead letters.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="At most N, oldest first.")
    ] = 100,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """List dead letters: tasks whose step failed after its last attempt."""

    async def main() -> None:
        async with connect(nats_url) as client:
            rows, more = await read_dead_letters(client.nc, run_id=run, limit=limit)
        if json_out:
            emit_json({"dead_letters": [asdict(r) for r in rows], "more": more})
            return
        if not rows:
            typer.echo("No dead letters.")
            return
        table(
            ["SEQ", "TIME (UTC)", "RUN", "STEP", "TASK", "ATTEMPTS", "ERROR"],
            [
                [
                    r.seq,
                    fmt_time(r.time),
                    r.run_id,
                    r.step_id if r.item is None else f"{r.step_id}[{r.item}]",
                    r.task,
                    r.attempts,
                    shorten(r.error, ERROR_WIDTH),
                ]
                for r in rows
            ],
        )
        if more:
            typer.echo(f"(more dead letters exist; raise --limit above {limit})", err=True)

    execute(main)
