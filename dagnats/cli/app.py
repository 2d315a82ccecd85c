"""The ``dagnats`` command: one typer app with a sub-app per noun."""

from __future__ import annotations

import inspect
import sys
from typing import Annotated, Any

import typer
import typer.core

from dagnats._version import __version__
from dagnats.cli import (
    control,
    dlq,
    graphs,
    logs,
    redrive,
    runs,
    server,
    triggers,
    worker_cmd,
    workflows,
)
from dagnats.cli.common import EXIT_INTERRUPTED, error_json, one_line

assert redrive.COMMANDS  # imported for its commands on ``dagnats run``

_type_label = typer.core.TyperOption.display_type_rich


def _no_flag_label(self: typer.core.TyperOption, ctx: Any) -> str | None:
    # typer labels every option with its type, so each flag reads "--json <bool>": a flag
    # takes no value, and the label only makes the help harder to read.
    return None if self.is_flag else _type_label(self, ctx)


typer.core.TyperOption.display_type_rich = _no_flag_label  # type: ignore[method-assign]

app = typer.Typer(
    name="dagnats",
    help="dagnats: a DAG workflow engine whose only infrastructure is NATS JetStream.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dagnats {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Run `dagnats serve`, then register workflows, run workers and start runs."""


app.command("serve")(server.serve_cmd)
app.command("engine")(server.engine_cmd)
app.command("api")(server.api_cmd)
app.command("triggers")(server.triggers_cmd)
app.command("worker")(worker_cmd.worker_cmd)
app.command("status")(control.status)
app.command("workers")(control.workers)
workflows.app.command("graph")(graphs.workflow_graph)
runs.app.command("graph")(graphs.run_graph)
runs.app.command("logs")(logs.run_logs)
app.add_typer(workflows.app, name="workflow")
app.add_typer(runs.app, name="run")  # with redrive's commands on it
app.add_typer(control.event_app, name="event")
app.command("approve")(control.approve)
app.command("reject")(control.reject)
app.add_typer(dlq.app, name="dlq")
app.add_typer(triggers.app, name="trigger")


def _summaries(typer_app: typer.Typer) -> None:
    """Give each command without one a one-line summary for the command lists: typer's
    rich lists keep the line breaks of a docstring's first paragraph (its own help page
    joins them), so "Start it several times to" would end a line there."""
    for info in typer_app.registered_commands:
        doc = inspect.cleandoc(info.help or getattr(info.callback, "__doc__", None) or "")
        if info.short_help is None and doc:
            info.short_help = doc.split("\n\n")[0].replace("\n", " ")
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _summaries(group.typer_instance)


_summaries(app)


def main() -> None:
    """Console-script entry point (``dagnats = dagnats.cli:main``).

    Usage errors are reported like every other error: one line on stderr, exit status 2.
    """
    try:
        result = app(prog_name="dagnats", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and callable(show):
            show()  # a group called without a command: its help
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        path = getattr(ctx, "command_path", None)
        hint = f" (see '{path} --help')" if path else ""
        if "--json" in sys.argv[1:]:
            kind = "UsageError" if exc.exit_code == 2 else type(exc).__name__
            typer.echo(error_json(kind, exc.format_message() + hint, exc.exit_code), err=True)
        else:
            typer.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
