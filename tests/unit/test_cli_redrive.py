"""Methodology: the CLI's redrive helpers as plain functions (``--since`` parsing, the JSON
Lines reader of ``run bulk``, the client's request splitting), and the typer app in-process
for the argument errors that never reach a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagnats.cli import app
from dagnats.cli.common import CliError
from dagnats.cli.redrive import read_inputs
from dagnats.cli.run_ref import since_time
from dagnats.client.redrive import MAX_REQUEST_BYTES, _chunks

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T10:00:00+01:00", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01T10:00:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),  # read as UTC
        (None, None),
    ],
)
def test_since_is_a_duration_or_a_time(text: str | None, expected: datetime | None) -> None:
    assert since_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "10", "-5m", "1x"])
def test_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(CliError, match="--since"):
        since_time(text, now=NOW)


def test_read_inputs_is_json_lines(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text('1\n\n{"a": 2}\n"three"\n')
    assert read_inputs(f) == [1, {"a": 2}, "three"]
    f.write_text("1\n{bad\n")
    with pytest.raises(CliError, match=r"in.jsonl:2: not JSON"):
        read_inputs(f)
    f.write_text("1\n" * 1001)
    with pytest.raises(CliError, match="more than 1000"):
        read_inputs(f)
    with pytest.raises(CliError, match="cannot read"):
        read_inputs(tmp_path / "missing.jsonl")


def test_requests_are_split_below_the_message_limit() -> None:
    assert _chunks([]) == [(0, 0)]
    assert _chunks([10, 10, 10]) == [(0, 3)]
    big = MAX_REQUEST_BYTES // 2
    assert _chunks([big, big, big, 5]) == [(0, 1), (1, 2), (2, 4)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "signal", "only-one-arg"], "expected RUN_ID NAME [DATA]"),
        (["run", "signal", "--last"], "Missing argument"),
        (["run", "signal", "--last", "n", "d", "x"], "expected NAME [DATA]"),
        (["run", "signal", "a", "b", "c", "d"], "expected RUN_ID NAME [DATA]"),
    ],
)
def test_argument_errors_are_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output


def test_run_group_lists_the_redrive_commands() -> None:
    result = runner.invoke(app, ["run", "--help"])
    for name in ("retry", "rerun", "bulk", "cancel-all"):
        assert f" {name} " in result.stdout, name
    result = runner.invoke(app, ["dlq", "--help"])
    assert " replay " in result.stdout
