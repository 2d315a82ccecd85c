"""Methodology: docs/examples.md embeds the Mermaid picture of every workflow the examples
define, and it must be the picture today's code draws. Every ``dagnats.Workflow`` object at
the top of each ``examples/<name>/workflow.py`` is rendered with ``dagnats.dag.picture``
and compared with the page; ``DAGNATS_UPDATE_DOCS=1 pytest tests/unit/test_docs_graphs.py``
rewrites the page."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import dagnats
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.picture import mermaid

ROOT = Path(__file__).resolve().parent.parent.parent
PAGE = ROOT / "docs" / "examples.md"
HEAD = """# The examples as pictures

Each workflow of [`examples/`](../examples/) drawn by `dagnats workflow graph NAME
--format mermaid` (GitHub and most Markdown viewers render these blocks). Rectangles are
task steps, `[[ ]]` agent loops and sub-workflows, `[/ /]` maps, rounded ones sleeps and
event waits, hexagons approvals; dotted edges lead to `on_failure` / `compensate` handlers.
A run is drawn the same way with each step coloured by its state (`dagnats run graph ID
--format mermaid`), and `dagnats run graph ID` draws it in the terminal. This page is
checked against the code by `tests/unit/test_docs_graphs.py`.
"""


def example_workflows() -> list[tuple[str, dagnats.Workflow]]:
    out: list[tuple[str, dagnats.Workflow]] = []
    for path in sorted((ROOT / "examples").glob("*/workflow.py")):
        module = importlib.import_module(f"examples.{path.parent.name}.workflow")
        seen: set[int] = set()
        for value in vars(module).values():
            if isinstance(value, dagnats.Workflow) and id(value) not in seen:
                seen.add(id(value))
                out.append((path.parent.name, value))
    return out


def render() -> str:
    parts = [HEAD]
    for example, wf in example_workflows():
        defn = load_definition(wf.to_dict())
        parts.append(f"\n## `{defn.name}` ([examples/{example}](../examples/{example}/))\n")
        parts.append(f"\n```mermaid\n{mermaid(defn)}```\n")
    return "".join(parts)


def test_the_examples_page_draws_every_example_workflow() -> None:
    text = render()
    if os.environ.get("DAGNATS_UPDATE_DOCS"):
        PAGE.write_text(text)
    assert len(example_workflows()) >= 9
    assert PAGE.read_text() == text, "docs/examples.md is stale: run with DAGNATS_UPDATE_DOCS=1"
