"""Smoke test of ``python -m benchmarks.run``: every default workload with tiny counts
completes and prints the summary table; ``--write-results`` and ``--profile`` write their
files. Nothing here is timed: the figures are the benchmark's output, not assertions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report

ROOT = Path(__file__).resolve().parent.parent.parent
TINY = ["--samples", "5", "--runs", "20", "--seq-samples", "2", "--map-items", "20"]
TINY += ["--sleepers", "20", "--probes", "1", "--restart-runs", "20", "--rss-runs", "20"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]


def bench(*args: str | Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_workload_runs_and_the_summary_and_results_are_written(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    out = bench(*TINY, "--no-uvloop", "--write-results", results, "--note", "smoke test")
    assert "event loop: asyncio in every process" in out
    table = out[out.index("issue 10's targets:") :]
    for name in ("3-step run p50", "20 concurrent 3-step runs", "40 sequential steps, median"):
        assert f"| {name} |" in table
    assert "| engine RSS after 20 finished runs |" in table
    assert table.count("| PASS |") + table.count("| MISS |") == 4
    for figure in ("map of 20 items", "20 sleeping runs: a 5 s sleep", "cold engine restart"):
        assert figure in out
    cpu = re.search(r"CPU per step while they ran: engine (\d+) us, worker (\d+) us", out)
    assert cpu is not None and int(cpu.group(1)) > 0, out
    assert re.search(r"its CPU per step: client \d+ us one at a time", out), out
    budgets = re.findall(r"CPU budget at the ([\d.]+)x target: at most (\d+) us a (run|step)", out)
    assert [b[0] for b in budgets] == ["1.8", "0.45", "1.25"], out
    assert all(int(b[1]) > 0 for b in budgets)
    assert "| 40 sequential steps | engine + worker + API |" in table
    text = results.read_text()
    assert report.BEGIN in text and "**smoke test**" in text and "### without uvloop" in text


def may_attach() -> bool:
    """Whether this kernel lets py-spy attach to a sibling process (Yama ptrace_scope)."""
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    return not scope.exists() or scope.read_text().strip() == "0" or os.geteuid() == 0


@pytest.mark.skipif(not may_attach(), reason="the kernel's Yama ptrace_scope forbids attaching")
def test_profile_writes_a_speedscope_file_per_process(tmp_path: Path) -> None:
    out = bench(*TINY, "--only", "throughput", "--profile", "--profile-dir", tmp_path)
    files = sorted(p.name for p in tmp_path.rglob("*.speedscope.json"))
    assert files == ["throughput-engine.speedscope.json", "throughput-worker.speedscope.json"]
    assert out.count("by own time:") == 2
