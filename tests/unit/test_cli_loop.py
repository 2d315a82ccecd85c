"""Methodology: the long-running commands' loop choice. ``loop.run`` is called with and
without uvloop and the loop the coroutine really ran on is looked at; when uvloop is not
installed, asking for it falls back to asyncio's loop instead of failing. The option is
read from the command line and from ``DAGNATS_UVLOOP`` by the real ``engine`` command
(its serving replaced by a recorder). A long-running process's collector settings are read
back inside the loop; the test restores them."""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from dagnats.cli import loop
from dagnats.cli import server as server_cli
from dagnats.cli.app import app

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_without_uvloop_the_standard_loop_runs() -> None:
    assert loop.loop_factory(False) is None
    assert loop.run(_loop_module(), use_uvloop=False).startswith("asyncio")


def test_uvloop_runs_when_installed_else_the_standard_loop() -> None:
    ran_on = loop.run(_loop_module(), use_uvloop=True)
    assert ran_on.startswith("uvloop" if HAVE_UVLOOP else "asyncio")


def test_a_missing_uvloop_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    assert loop.loop_factory(True) is None


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, True),
        (["--no-uvloop"], {}, False),
        ([], {"DAGNATS_UVLOOP": "0"}, False),
        (["--uvloop"], {"DAGNATS_UVLOOP": "0"}, True),
    ],
)
def test_the_engine_command_reads_the_choice(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], expected: bool
) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(server_cli, "_run_serve", lambda opts, use: seen.append(use))
    result = CliRunner().invoke(app, ["engine", *args], env=env)
    assert result.exit_code == 0, result.output
    assert seen == [expected]


@pytest.fixture
def gc_restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


async def _gc_state() -> tuple[tuple[int, int, int], int]:
    return gc.get_threshold(), gc.get_freeze_count()


@pytest.mark.usefixtures("gc_restored")
def test_a_long_running_process_tunes_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loop.GC_ENV, raising=False)
    assert loop.run(_gc_state(), use_uvloop=False)[0] != loop.GC_THRESHOLD
    threshold, frozen = loop.run(_gc_state(), use_uvloop=False, long_running=True)
    assert threshold == loop.GC_THRESHOLD
    assert frozen > 0  # the start-up objects are out of every later pass


@pytest.mark.usefixtures("gc_restored")
def test_the_collector_can_be_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loop.GC_ENV, "default")
    before = gc.get_threshold()
    assert loop.run(_gc_state(), long_running=True)[0] == before


@pytest.mark.usefixtures("gc_restored")
def test_an_unknown_collector_mode_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(loop.GC_ENV, "off")
    before = gc.get_threshold()
    with pytest.raises(ValueError, match=r"DAGNATS_GC must be one of tuned, default, got 'off'"):
        loop.tune_gc()
    assert gc.get_threshold() == before  # nothing changed
