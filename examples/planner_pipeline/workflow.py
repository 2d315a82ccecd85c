"""The planner pipeline, loaded from ``workflow.json`` (DagNats' JSON form, durations in ns)."""

from __future__ import annotations

from pathlib import Path

import dagnats

WORKFLOW_FILE = Path(__file__).with_name("workflow.json")
workflow = dagnats.Workflow.from_json(WORKFLOW_FILE.read_text())
