"""House rules the code keeps for itself: short functions, a pinned public API."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import dagnats

PACKAGE = Path(dagnats.__file__).parent
MAX_FUNCTION_LINES = 70

# The public API (API.md). Adding or removing a name means editing this list: that is the
# point, a change to the front door is a decision, never a side effect.
EXPECTED_ALL = [
    "ApiError",
    "ApprovalError",
    "Client",
    "Continue",
    "DagnatsError",
    "DefinitionError",
    "DurationError",
    "DurationLike",
    "Event",
    "InputValidationError",
    "NatsUnavailableError",
    "NonRetryableError",
    "NotFoundError",
    "RetryAfter",
    "RetryPolicy",
    "RunCancelledError",
    "RunError",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunState",
    "RunSummary",
    "ServerError",
    "StepDef",
    "StepRef",
    "StepState",
    "Task",
    "TaskContext",
    "TaskError",
    "Worker",
    "Workflow",
    "WorkflowDef",
    "WorkflowInfo",
    "WorkflowNotFoundError",
    "__version__",
]


def _long_functions() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                end = node.end_lineno or node.lineno
                lines = end - node.body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    where = path.relative_to(PACKAGE.parent)
                    found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_body_is_longer_than_70_lines() -> None:
    assert _long_functions() == []


def test_all_is_sorted_and_pinned() -> None:
    assert dagnats.__all__ == sorted(dagnats.__all__)
    assert dagnats.__all__ == EXPECTED_ALL


def test_every_public_name_is_importable() -> None:
    module = importlib.import_module("dagnats")
    missing = [name for name in dagnats.__all__ if not hasattr(module, name)]
    assert missing == []
