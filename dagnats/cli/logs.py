"""``dagnats run logs ID|--last [--step S]``: what the run's handlers logged (``ctx.logger``)."""

from __future__ import annotations

from typing import Annotated

import typer

from dagnats.cli.common import DEFAULT_NATS_URL, CliError, JsonOpt, NatsUrlOpt, execute
from dagnats.cli.common import connect as connect_client
from dagnats.cli.output import emit_json, fmt_time
from dagnats.cli.run_ref import LastOpt, RunRefArg, run_ref
from dagnats.protocol.logs import MAX_LOG_BYTES, MAX_LOG_LINES, StepLog


def _print(logs: dict[str, StepLog]) -> None:
    for key, step_log in logs.items():
        if step_log.dropped:
            typer.echo(
                f"[{key}] … {step_log.dropped} older lines dropped (a step keeps its last "
                f"{MAX_LOG_LINES} lines within {MAX_LOG_BYTES // 1024} KiB)"
            )
        for line in step_log.lines:
            where = f"{key}#{line.attempt}"
            if line.iteration:
                where += f".{line.iteration}"
            typer.echo(f"{fmt_time(line.ts, millis=True)} {line.level:<7} [{where}] {line.message}")


def _of_step(key: str, step: str) -> bool:
    """A log key is ``<step>`` or ``<step>.<item>``; a step id may be dotted itself."""
    return key == step or (key.startswith(f"{step}.") and key[len(step) + 1 :].isdigit())


def run_logs(
    run_id: RunRefArg = None,
    last: LastOpt = False,
    step: Annotated[str | None, typer.Option("--step", help="Only this step's lines.")] = None,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Print what a run's handlers logged through ctx.logger (INFO and above), per step."""

    async def main() -> None:
        async with connect_client(nats_url) as client:
            rid = await run_ref(client, run_id, last)
            logs = await client.run_logs(rid)
            if step is not None:
                state = await client.get_run(rid)
                if step not in state.steps and not any(_of_step(k, step) for k in logs):
                    raise CliError(f"run '{rid}' has no step '{step}' that has started")
                logs = {k: v for k, v in logs.items() if _of_step(k, step)}
        if json_out:
            emit_json({k: v.model_dump(mode="json") for k, v in logs.items()})
        elif not logs:
            typer.echo("No log lines.")
        else:
            _print(logs)

    execute(main)
