"""How the CLI names runs: a whole id, an unambiguous prefix of 8+ characters, or ``--last``.

The server resolves prefixes (``run.resolve``), so every command that takes a run id
accepts the same forms and reports an ambiguous or too short prefix with its candidates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from dagnats.cli.common import CliError
from dagnats.client import Client
from dagnats.protocol.durations import parse_duration

RunRefArg = Annotated[
    str | None,
    typer.Argument(
        metavar="RUN_ID",
        help="The run's id, or an unambiguous prefix of 8+ characters (or use --last).",
        show_default=False,
    ),
]
LastOpt = Annotated[
    bool, typer.Option("--last", help="The newest run (by creation time) instead of RUN_ID.")
]


async def run_ref(client: Client, run_id: str | None, last: bool) -> str:
    """The whole run id that the command line names."""
    if last and run_id:
        raise CliError(f"give a RUN_ID or --last, not both (got RUN_ID {run_id!r} and --last)")
    if last:
        return await client.last_run_id()
    if not run_id:
        raise CliError("missing RUN_ID: give a run id (8+ characters of it do) or --last")
    return await client.resolve_run_id(run_id)


def since_time(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``--since``: a duration back from now (``30m``, ``2h``, ``1h30m``) or an RFC 3339
    time (``2026-12-01T10:00:00Z``)."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    try:
        ns = parse_duration(text)
    except (TypeError, ValueError) as exc:
        raise CliError(
            f"--since {text!r} is neither a duration (30m, 2h, 1h30m) nor an RFC 3339 time "
            "(2026-12-01T10:00:00Z)"
        ) from exc
    if ns < 0:
        raise CliError(f"--since {text!r}: a duration back from now must not be negative")
    return (now or datetime.now(UTC)) - timedelta(microseconds=ns / 1000)
