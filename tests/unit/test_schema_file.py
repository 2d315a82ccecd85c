"""Methodology: regenerate the schema and diff it with docs/workflow-schema.json; --check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagnats.dag.definition.jsonschema import check_schema, validate_instance
from dagnats.dag.definition.schema import DEFAULT_PATH, main, render, workflow_json_schema

REFERENCE = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "reference").glob("*.json"))


def test_committed_schema_is_fresh() -> None:
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(), (
        "docs/workflow-schema.json is stale: run python -m dagnats.dag.definition.schema"
    )


def test_schema_header() -> None:
    schema = workflow_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["title"] == "dagnats workflow definition"
    assert "$schema" in schema["properties"]
    assert schema["additionalProperties"] is False


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schema.json"
    assert main(["--check", str(target)]) == 1
    assert main([str(target)]) == 0
    assert main(["--check", str(target)]) == 0
    target.write_text("{}\n")
    assert main(["--check", str(target)]) == 1
    assert "stale" in capsys.readouterr().err


@pytest.mark.parametrize("path", REFERENCE, ids=lambda p: p.name)
def test_reference_files_match_schema(path: Path) -> None:
    schema = workflow_json_schema()
    check_schema(schema)
    assert validate_instance(schema, json.loads(path.read_text())) == []


def test_schema_rejects_unknown_field() -> None:
    messages = validate_instance(workflow_json_schema(), {"name": "w", "steps": [], "x": 1})
    assert messages == ["input: Additional properties are not allowed ('x' was unexpected)"]
