"""The chaos suite's fixtures: every test here is marked ``chaos``, bounded by its own
timeout, and its figures are gathered for the terminal summary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import Figures

REPORTED: list[Figures] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.chaos)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """The test's figures, reported in the summary whether it passes or fails."""
    fig = Figures(name=request.node.name)
    started = time.monotonic()
    yield fig
    fig.seconds = fig.seconds or time.monotonic() - started
    REPORTED.append(fig)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """The file the chaos worker appends one line per handler call to."""
    return tmp_path / "ledger.txt"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTED:
        terminalreporter.section("chaos figures")
        for fig in REPORTED:
            terminalreporter.write_line(fig.line())
