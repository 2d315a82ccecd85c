"""Methodology: the typer app driven in-process with typer's CliRunner (and ``main()`` for the
usage-error path); commands that would talk to NATS get a recording fake client, except the
unreachable-server check, which dials a free loopback port with nothing listening."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import dagnats
from dagnats.cli import app, main
from dagnats.cli import runs as runs_cli
from dagnats.cli.common import CliError, parse_value
from dagnats.cli.loader import resolve
from dagnats.cli.output import compact, fmt_duration, watch_line
from dagnats.protocol.events import Event
from dagnats.server import free_port

runner = CliRunner()

COMMANDS = (
    "serve", "engine", "api", "worker", "status", "workers", "workflow", "run", "event",
    "approve", "reject", "dlq",
)  # fmt: skip


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert f" {name} " in result.stdout, name


def test_command_lists_give_each_summary_on_unbroken_lines() -> None:
    """A docstring's first paragraph is one summary: its own line breaks do not show."""
    wide = CliRunner(env={"COLUMNS": "250"})
    top = wide.invoke(app, ["--help"]).stdout
    assert "Start it several times to share the history partitions between engines" in top
    runs = wide.invoke(app, ["run", "--help"]).stdout
    lines = [line for line in runs.splitlines() if " start " in line]
    assert len(lines) == 1 and "Start a run" in lines[0], runs


@pytest.mark.parametrize(
    ("group", "commands"),
    [
        ("run", ("start", "status", "events", "output", "list", "cancel", "signal", "delete")),
        ("workflow", ("register", "list", "show", "delete")),
        ("dlq", ("list",)),
        ("event", ("publish",)),
    ],
)
def test_group_help(group: str, commands: tuple[str, ...]) -> None:
    result = runner.invoke(app, [group, "--help"])
    assert result.exit_code == 0, result.output
    for name in commands:
        assert f" {name} " in result.stdout, name


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"dagnats {dagnats.__version__}" == "dagnats 0.1.0"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"World"', "World"),
        ('{"a": 1}', {"a": 1}),
        ("[1, 2]", [1, 2]),
        ("42", 42),
        ("true", True),
        ("null", None),
        (None, None),
    ],
)
def test_parse_value_is_json(text: str | None, value: Any) -> None:
    assert parse_value(text) == value


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("World", "Expecting value (line 1, column 1)"),
        ("{not json", "Expecting property name enclosed in double quotes (line 1, column 2)"),
        ("", "Expecting value (line 1, column 1)"),
        ("[1, 2", "Expecting ',' delimiter (line 1, column 6)"),
    ],
)
def test_text_that_is_not_json_is_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(typer.BadParameter) as caught:
        parse_value(text, "INPUT")
    assert problem in caught.value.message
    assert "write a string as JSON too" in caught.value.message


class _Handle:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.duplicate = False


class _RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    async def start(self, workflow: str, run_input: Any = None, **kw: Any) -> _Handle:
        self.calls.append((workflow, run_input, kw))
        return _Handle("r-123")


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> _RecordingClient:
    client = _RecordingClient()

    @asynccontextmanager
    async def fake_connect(url: str, **_: Any) -> AsyncIterator[_RecordingClient]:
        yield client

    monkeypatch.setattr(runs_cli, "connect", fake_connect)
    return client


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (['"World"'], "World"),
        (['{"repo": "x", "n": 2}'], {"repo": "x", "n": 2}),
        ([], None),
    ],
)
def test_run_start_parses_input(
    fake_client: _RecordingClient, argv: list[str], expected: Any
) -> None:
    result = runner.invoke(app, ["run", "start", "hello-pipeline", *argv])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Run r-123 started"
    assert fake_client.calls == [
        ("hello-pipeline", expected, {"idempotency_key": None, "run_id": None})
    ]


@pytest.mark.parametrize("argv", [["World"], ["'World'"], ["{repo: x}"]])
def test_run_start_refuses_input_that_is_not_json(
    fake_client: _RecordingClient, argv: list[str]
) -> None:
    result = runner.invoke(app, ["run", "start", "hello-pipeline", *argv])
    assert result.exit_code == 2
    assert "is not valid JSON" in result.output and "INPUT" in result.output
    assert fake_client.calls == []


def test_run_start_reads_input_from_a_file_or_stdin(
    fake_client: _RecordingClient, tmp_path: Path
) -> None:
    f = tmp_path / "in.json"
    f.write_text('{"repo": "x"}')
    assert runner.invoke(app, ["run", "start", "wf", "--input-file", str(f)]).exit_code == 0
    piped = runner.invoke(app, ["run", "start", "wf", "--input-file", "-"], input='"Ada"')
    assert piped.exit_code == 0, piped.output
    assert [c[1] for c in fake_client.calls] == [{"repo": "x"}, "Ada"]
    both = runner.invoke(app, ["run", "start", "wf", '"x"', "--input-file", str(f)])
    assert both.exit_code == 2 and "not both" in both.output
    missing = runner.invoke(app, ["run", "start", "wf", "--input-file", str(tmp_path / "no")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    broken = runner.invoke(app, ["run", "start", "wf", "--input-file", str(bad)])
    assert broken.exit_code == 2 and "is not valid JSON" in broken.output


def test_run_start_options_and_json(fake_client: _RecordingClient) -> None:
    argv = ["run", "start", "wf", "1", "--idempotency-key", "k1", "--run-id", "my-run", "--json"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"run_id": "r-123", "workflow": "wf", "duplicate": False}
    assert fake_client.calls == [("wf", 1, {"idempotency_key": "k1", "run_id": "my-run"})]


def test_unreachable_nats_is_one_error_line_and_fast() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = runner.invoke(app, ["run", "status", "abc", "--nats-url", url])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot connect to NATS at {url}: ")
    assert "Traceback" not in result.stderr
    assert elapsed < 5.0


def test_nats_url_from_environment() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["workflow", "list"], env={"DAGNATS_NATS_URL": url})
    assert result.exit_code == 1
    assert f"cannot connect to NATS at {url}" in result.stderr


def test_usage_error_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["dagnats", "run", "list", "--status", "bogus"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("error: ") and "--status" in err


def test_too_many_leaf_remotes_is_a_usage_error() -> None:
    argv = ["serve"] + [a for i in range(11) for a in ("--leaf-remote", f"nats://h{i}:7422")]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert "at most 10 leaf remotes" in result.output


def _write_module(tmp: Path, name: str, body: str) -> None:
    (tmp / f"{name}.py").write_text(textwrap.dedent(body))


def _is_worker(obj: Any) -> bool:
    return isinstance(obj, dagnats.Worker)


def test_loader_finds_workers_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(
        tmp_path,
        "cli_loader_mod",
        """
        import dagnats
        worker = dagnats.Worker(name="w1")
        def make():
            return dagnats.Worker(name="w2")
        def needs(x):
            return x
        number = 42
        """,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve("cli_loader_mod:worker", _is_worker, "a Worker").name == "w1"
    assert resolve("cli_loader_mod:make", _is_worker, "a Worker").name == "w2"
    errors = {
        "cli_loader_nope:worker": "module 'cli_loader_nope' not found",
        "cli_loader_mod:nope": "module 'cli_loader_mod' has no attribute 'nope'",
        "cli_loader_mod:number": "'cli_loader_mod:number' is int, expected a Worker",
        "cli_loader_mod:needs": "is a callable that needs arguments",
        "no-colon": "expected MODULE:ATTR",
    }
    for spec, message in errors.items():
        with pytest.raises(CliError, match=message):
            resolve(spec, _is_worker, "a Worker")


def test_worker_command_reports_a_missing_module() -> None:
    result = runner.invoke(app, ["worker", "cli_no_such_module_abc:worker"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: module 'cli_no_such_module_abc' not found (looked in {Path.cwd()} and on sys.path)"
    )


def test_output_helpers() -> None:
    assert fmt_duration(1_000_000_000) == "1s"
    assert fmt_duration(1_500_000_000) == "1.5s"
    assert fmt_duration(90 * 1_000_000_000) == "1m30s"
    assert fmt_duration(2 * 3600 * 1_000_000_000) == "2h"
    assert fmt_duration(250_000_000) == "250ms"
    assert compact("Hello, World!") == '"Hello, World!"'
    assert len(compact("x" * 500)) == 200


def _ev(type_: str, **kw: Any) -> Event:
    return Event(type=type_, run_id="r", **kw)


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (_ev("step.completed", step_id="greet", attempt=1), "step.greet: completed"),
        (
            _ev("step.failed", step_id="greet", attempt=1, data={"error": "boom"}),
            "step.greet: failed (attempt 1): boom",
        ),
        (
            _ev("step.retrying", step_id="greet", data={"delay_ns": 10**9}),
            "step.greet: retrying in 1s",
        ),
        (_ev("step.started", step_id="greet", attempt=1), None),
        (_ev("workflow.completed"), None),
        (_ev("signal.received", data={"name": "go", "data": 1}), "signal go received: 1"),
    ],
)
def test_watch_lines_follow_the_tutorial(event: Event, line: str | None) -> None:
    assert watch_line(event) == line


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "signal", "run-12345678", "go", "World"],
        ["event", "publish", "payment.received", "{amount: 3}"],
        ["approve", "a" * 64, "yes"],
    ],
)
def test_data_that_is_not_json_is_refused_before_connecting(argv: list[str]) -> None:
    result = runner.invoke(app, [*argv, "--nats-url", "nats://127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert "is not valid JSON" in result.output and "DATA" in result.output
