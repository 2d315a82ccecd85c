"""``dagnats workflow register|list|show|validate|delete``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from dagnats.cli.common import (
    DEFAULT_NATS_URL,
    EXIT_USAGE,
    CliError,
    JsonOpt,
    NatsUrlOpt,
    connect,
    execute,
    fail,
)
from dagnats.cli.loader import resolve
from dagnats.cli.output import emit_json, table
from dagnats.dag.definition.builder import Workflow
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import definition_problems
from dagnats.errors import DefinitionError

app = typer.Typer(help="Register and inspect workflow definitions.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The workflow's name.")]


def _is_definition(obj: Any) -> bool:
    return isinstance(obj, dict | WorkflowDef) or callable(getattr(obj, "to_dict", None))


def load_source(source: str) -> Any:
    """A definition from a JSON file, or from a ``MODULE:ATTR`` (Workflow builder or dict)."""
    path = Path(source)
    if source.endswith(".json") or path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {source}: {exc.strerror or exc}") from exc
        try:
            return json.loads(text)
        except ValueError as exc:
            raise CliError(f"{source} is not valid JSON: {exc}") from exc
    if ":" in source:
        obj = resolve(source, _is_definition, "a dagnats.Workflow or a dict")
        to_dict = getattr(obj, "to_dict", None)
        return to_dict() if callable(to_dict) else obj
    raise CliError(f"{source!r} is neither a .json file nor MODULE:ATTR", code=2)


@app.command("register")
def register(
    source: Annotated[str, typer.Argument(metavar="FILE.json|MODULE:ATTR")],
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Register a workflow (a new revision if it changed; the same definition is a no-op)."""

    async def main() -> None:
        definition = load_source(source)
        async with connect(nats_url) as client:
            info = await client.register(definition)
        if json_out:
            emit_json({"name": info.name, "version": info.version, "revision": info.revision})
        else:
            typer.echo(
                f"Registered workflow {info.name} version {info.version} (revision {info.revision})"
            )

    execute(main)


@app.command("list")
def list_(nats_url: NatsUrlOpt = DEFAULT_NATS_URL, json_out: JsonOpt = False) -> None:
    """List registered workflows (latest revision of each)."""

    async def main() -> None:
        async with connect(nats_url) as client:
            rows = await client.list_workflows()
        if json_out:
            emit_json([asdict(w) for w in rows])
        elif not rows:
            typer.echo("No workflows registered.")
        else:
            table(
                ["NAME", "VERSION", "REVISION", "STEPS", "DESCRIPTION"],
                [[w.name, w.version, w.revision, w.steps, w.description or ""] for w in rows],
            )

    execute(main)


@app.command("show")
def show(
    name: NameArg,
    revision: Annotated[
        int | None, typer.Option("--revision", min=1, help="A past revision [default: latest].")
    ] = None,
    form: Annotated[
        str,
        typer.Option(
            "--format",
            help="dagnats (durations as strings, set fields only) or go (the Go DagNats form).",
        ),
    ] = "dagnats",
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Print a workflow's definition as JSON (re-registrable as is).

    With --json the document is {"revision": N, "definition": {...}}.
    """
    if form not in ("dagnats", "go"):
        raise CliError(f"--format must be 'dagnats' or 'go', got {form!r}", code=EXIT_USAGE)

    async def main() -> None:
        async with connect(nats_url) as client:
            found = await client.get_workflow(name, revision)
        if form == "go":
            found = {**found, "definition": Workflow.from_dict(found["definition"]).to_dict("go")}
        emit_json(found if json_out else found.get("definition"))

    execute(main)


def _problems_of(source: str) -> list[DefinitionError]:
    path = Path(source)
    try:
        if source.endswith(".json") or path.is_file():
            try:
                text = path.read_bytes()
            except OSError as exc:
                raise CliError(f"cannot read {source}: {exc.strerror or exc}") from exc
            return definition_problems(text)  # a JSON error is a problem with its line
        return definition_problems(load_source(source))
    except DefinitionError as exc:  # a builder refused its own definition
        return [exc]


@app.command("validate")
def validate(
    source: Annotated[str, typer.Argument(metavar="FILE.json|MODULE:ATTR")],
    json_out: JsonOpt = False,
) -> None:
    """Check a definition offline (no server): every problem with its step, field and rule.

    Exit status 0 when it is valid, 1 when it is not.
    """
    try:
        problems = _problems_of(source)
    except CliError as exc:
        fail(str(exc), exc.code)
    if json_out:
        emit_json(
            {
                "valid": not problems,
                "problems": [
                    {"message": str(p), "step": p.step_id, "field": p.field} for p in problems
                ],
            }
        )
    elif problems:
        for p in problems:
            typer.echo(f"{source}: {p}", err=True)
        typer.echo(f"{source}: {len(problems)} problem(s)", err=True)
    else:
        typer.echo(f"{source}: valid")
    if problems:
        raise typer.Exit(1)


@app.command("delete")
def delete(
    name: NameArg, nats_url: NatsUrlOpt = DEFAULT_NATS_URL, json_out: JsonOpt = False
) -> None:
    """Delete a workflow (past revisions stay readable for runs that use them)."""

    async def main() -> None:
        async with connect(nats_url) as client:
            await client.delete_workflow(name)
        if json_out:
            emit_json({"deleted": name})
        else:
            typer.echo(f"Deleted workflow {name}")

    execute(main)
