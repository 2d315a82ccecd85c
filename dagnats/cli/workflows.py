"""``dagnats workflow register|list|show|delete``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from dagnats.cli.common import DEFAULT_NATS_URL, CliError, JsonOpt, NatsUrlOpt, connect, execute
from dagnats.cli.loader import resolve
from dagnats.cli.output import emit_json, table
from dagnats.dag.definition.models import WorkflowDef

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
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    json_out: JsonOpt = False,
) -> None:
    """Print a workflow's definition as JSON (re-registrable as is).

    With --json the document is {"revision": N, "definition": {...}}.
    """

    async def main() -> None:
        async with connect(nats_url) as client:
            found = await client.get_workflow(name, revision)
        emit_json(found if json_out else found.get("definition"))

    execute(main)


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
