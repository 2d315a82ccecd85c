"""The JSON Schema of workflow definition files, for editors and CI.

``python -m dagnats.dag.definition.schema [--check] [PATH]`` writes
``docs/workflow-schema.json`` (or PATH); with ``--check`` it writes nothing and exits 1 when
the file is stale, so CI catches a model change that was not followed by a regenerated schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dagnats.dag.definition.models import WorkflowDef

SCHEMA_ID = "urn:dagnats:workflow-schema"
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "docs" / "workflow-schema.json"


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a workflow definition file."""
    body = WorkflowDef.model_json_schema(by_alias=True)
    head: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "dagnats workflow definition",
        "description": (
            "A DAG of steps run by dagnats. Durations are Go-style strings ('30s', '1h30m') "
            "or integer nanoseconds. Rules between fields (dependencies, handlers, per-type "
            "config) are checked by dagnats when the workflow is registered."
        ),
    }
    return {**head, **{k: v for k, v in body.items() if k not in ("title", "description")}}


def render() -> str:
    """The file content: stable key order, two-space indent, trailing newline."""
    return json.dumps(workflow_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dagnats.dag.definition.schema", description=__doc__
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    path: Path = args.path
    text = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            print(f"{path} is stale; run: python -m dagnats.dag.definition.schema", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
