"""``dagnats workflow graph NAME`` and ``dagnats run graph ID|--last``: the DAG as a picture.

``--format text`` (the default) draws it for a terminal with each step's state in colour;
``--format mermaid`` prints Mermaid ``flowchart`` text for docs, issues and wikis.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from dagnats.cli.common import DEFAULT_NATS_URL, NatsUrlOpt, execute
from dagnats.cli.common import connect as connect_client
from dagnats.cli.run_ref import run_ref
from dagnats.client import Client
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine.state import RunState
from dagnats.dag.picture import mermaid, terminal


class GraphFormat(StrEnum):
    text = "text"
    mermaid = "mermaid"


FormatOpt = Annotated[
    GraphFormat,
    typer.Option("--format", "-f", help="text: a coloured terminal drawing; mermaid: Mermaid."),
]
LastOpt = Annotated[bool, typer.Option("--last", help="The newest run instead of RUN_ID.")]


def _print(defn: WorkflowDef, run: RunState | None, fmt: GraphFormat) -> None:
    if fmt is GraphFormat.mermaid:
        typer.echo(mermaid(defn, run), nl=False)
    else:
        Console(highlight=False, soft_wrap=True).print(terminal(defn, run))


async def resolve_run_id(client: Client, run_id: str | None, last: bool) -> str:
    """RUN_ID (whole, or an 8+ character prefix), or with ``--last`` the newest run."""
    return await run_ref(client, run_id, last)


async def definition_of_run(client: Client, state: RunState) -> WorkflowDef:
    found = await client.get_workflow(state.workflow, state.revision)
    return load_definition(found["definition"])


def workflow_graph(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The workflow's name.")],
    revision: Annotated[
        int | None, typer.Option("--revision", min=1, help="A past revision [default: latest].")
    ] = None,
    fmt: FormatOpt = GraphFormat.text,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
) -> None:
    """Draw a registered workflow's DAG."""

    async def main() -> None:
        async with connect_client(nats_url) as client:
            found = await client.get_workflow(name, revision)
        _print(load_definition(found["definition"]), None, fmt)

    execute(main)


def run_graph(
    run_id: Annotated[
        str | None, typer.Argument(metavar="RUN_ID", help="The run's id (or --last).")
    ] = None,
    last: LastOpt = False,
    fmt: FormatOpt = GraphFormat.text,
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
) -> None:
    """Draw a run's DAG with each step's status and attempts."""

    async def main() -> None:
        async with connect_client(nats_url) as client:
            rid = await resolve_run_id(client, run_id, last)
            state = await client.get_run(rid)
            defn = await definition_of_run(client, state)
        _print(defn, state, fmt)

    execute(main)
