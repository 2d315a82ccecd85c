"""The benchmark CLI's own logic, without NATS: option checks, the profile reader, the
RESULTS.md writer, the CPU budgets (the run itself is tests/e2e/test_benchmarks.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from benchmarks import budget, report, run, stack
from benchmarks.profile import own_time
from benchmarks.session import Floor, Session


def test_counts_default_to_full_and_quick_shrinks_only_what_was_not_given() -> None:
    full = run.parse([])
    assert full.seq_samples == 30 and full.map_items == 10_000 and full.rss_runs == 20_000
    assert full.workloads == list(run.DEFAULT)
    quick = run.parse(["--quick", "--runs", "7"])
    assert quick.runs == 7 and quick.rss_runs == run.COUNTS["rss_runs"][1]


def test_only_selects_in_run_order_and_large_adds_the_100k_sleepers() -> None:
    assert run.parse(["--only", "rss,latency", "--only", "map"]).workloads == [
        "latency",
        "map",
        "rss",
    ]
    assert run.parse(["--large"]).workloads[-1] == "sleepers-large"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "latency,nope"], "unknown workload(s) nope"),
        (["--map-items", "10001"], "at most 10,000 items"),
        (["--rss-runs", "0"], "--rss-runs must be at least 1"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run.parse(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_own_time_counts_the_innermost_frame_of_each_sample(tmp_path: Path) -> None:
    frames = [
        {"name": "main", "file": "/x/app/main.py", "line": 1},
        {"name": "apply", "file": "/x/engine/engine.py", "line": 9},
        {"name": "encode", "file": "/x/protocol/wire.py", "line": 4},
    ]
    samples = [[0, 1], [0, 1, 2], [0, 1, 2], [0, 1, 2], []]
    doc = {
        "shared": {"frames": frames},
        "profiles": [{"samples": samples, "weights": [0.01] * len(samples)}],
    }
    path = tmp_path / "p.speedscope.json"
    path.write_text(json.dumps(doc))
    count, top = own_time(path, 5)
    assert count == 4
    assert [label for label, _ in top] == [
        "encode (protocol/wire.py:4)",
        "apply (engine/engine.py:9)",
    ]
    assert [round(share, 2) for _, share in top] == [0.75, 0.25]


def _session(**figures: float) -> Session:
    s = Session(uvloop=False, floor=Floor(p50_ms=0.5, p99_ms=0.9, steps_per_s=10_000))
    s.figures.update(figures)
    s.lines.append("raw NATS floor, one step: ...")
    return s


def test_targets_pass_or_miss_against_the_issue_limits() -> None:
    s = _session(
        run3_p50_ms=2.0,
        run3_p50_ratio=1.33,
        throughput_runs=1000,
        throughput_steps_per_s=4000,
        throughput_ratio=0.40,
    )
    rows = report.target_table(s)
    assert rows[2].endswith("| PASS |") and "0.500 ms x 3 = 1.50 ms" in rows[2]
    assert rows[3].endswith("| MISS |") and "10000 steps/s" in rows[3]
    assert "not run" in rows[4] and "not run" in rows[5]


def test_write_replaces_only_the_generated_section(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## Older figures\n\nkept\n")
    s = _session(rss_runs=20_000, rss_idle_mib=60, rss_after_mib=70, rss_over_idle_mib=10)
    report.write(path, [s], "python -m benchmarks.run", "loaded machine")
    report.write(path, [s], "python -m benchmarks.run", "loaded machine")
    text = path.read_text()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    assert text.index(report.END) < text.index("## Older figures") and "kept" in text
    assert "**loaded machine**" in text and "### without uvloop" in text
    assert "| engine RSS after 20,000 finished runs | 70 MiB | idle engine 60 MiB |" in text


async def test_a_failed_workload_is_reported_and_the_rest_goes_on() -> None:
    s = _session()

    async def lost() -> None:
        raise TimeoutError("3 of 1000 runs did not end within 160 s")

    await run._guarded(s, "throughput", lost)
    assert s.failures == {"throughput": "TimeoutError: 3 of 1000 runs did not end within 160 s"}
    assert s.lines[-1].startswith("throughput: FAILED: TimeoutError: 3 of 1000")
    assert "| concurrent 3-step runs | FAILED |" in report.target_table(s)[3]
    await run._guarded(s, "restart", lost)
    assert report.other_table(s)[-1].startswith("| restart | FAILED: TimeoutError: 3 of 1000")


async def test_a_wait_for_many_runs_ends_when_none_has_ended_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack, "STALL_S", 0.05)
    watch = stack._Progress(2, timeout_s=30)
    never = asyncio.Event()

    async def ends() -> None:
        watch.started("run-a")
        watch.ended("run-a")

    async def lost() -> None:
        watch.started("run-b")
        await asyncio.wait_for(never.wait(), 30)

    with pytest.raises(TimeoutError, match=r"1 of 2 runs did not end and none ended .*run-b"):
        await asyncio.wait_for(watch.wait([ends(), lost()]), 10)


def test_the_two_engine_row_stands_alone_with_its_own_floor() -> None:
    s = _session(engines2_runs=1000, engines2_steps_per_s=3000, engines2_ratio=0.5)
    s.floors["engines2"] = Floor(p50_ms=0.4, p99_ms=1.0, steps_per_s=6000)
    row = report.other_table(s)[-1]
    assert row.startswith("| 1,000 concurrent 3-step runs on two engines | 3000 steps/s |")
    assert "| 6000 steps/s | 0.50x |" in row


def test_a_sequential_budget_is_the_target_time_as_cpu() -> None:
    fl = Floor(p50_ms=0.6, p99_ms=1.0, steps_per_s=8000, client_cpu_us_one=400)
    used = {"engine": 600.0, "worker": 450.0, "api": 20.0, "nats-server": 300.0}
    b = budget.sequential(fl, 1.25, 1, used)
    assert (round(b.allowed_us), b.used_us, b.nats_ops_us) == (750, 1070.0, 400)
    assert not b.fits  # nats-server's CPU is not the clients' to spend
    three = budget.sequential(fl, 1.8, 3, {**used, "engine": 100.0, "worker": 100.0})
    assert (round(three.allowed_us), three.used_us, three.nats_ops_us) == (3240, 220.0, 1200)
    assert three.fits


def test_a_concurrent_budget_shares_the_cores_among_every_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("benchmarks.budget.os.sched_getaffinity", lambda _pid: {0, 1})
    fl = Floor(
        p50_ms=0.6,
        p99_ms=1.0,
        steps_per_s=10_000,
        client_cpu_us_many=100,
        server_cpu_us_many=40,
    )
    used = {"engine": 400.0, "worker": 200.0, "api": 50.0, "nats-server": 130.0}
    b = budget.concurrent(fl, 0.5, used)
    assert (round(b.allowed_us), b.used_us, b.nats_ops_us) == (400, 780.0, 140)
    assert (round(b.each_allowed_us or 0), b.each_used_us) == (200, 400.0)
    line = budget.describe(b, 0.5, "step", used)
    assert "at most 400 us a step, 200 in any one of ours; used 780 (engine 400, " in line
    assert line.endswith("cost the floor's client and nats-server 140")
    # Within the total, but one process above a core's share: the engine alone bounds it.
    lean = {"engine": 250.0, "worker": 50.0, "api": 10.0, "nats-server": 40.0}
    alone = budget.concurrent(fl, 0.5, lean)
    assert alone.used_us <= alone.allowed_us and not alone.fits


def test_the_budget_table_lists_the_measured_targets_only() -> None:
    assert report.budget_table(_session()) == []
    s = _session(seq40_cpu_allowed_us=700, seq40_cpu_used_us=1100, seq40_cpu_nats_ops_us=380)
    rows = report.budget_table(s)
    assert len(rows) == 3
    assert rows[2] == (
        "| 40 sequential steps | engine + worker + API | 700 us a step | 1100 us | 380 us | no |"
    )
    many = _session(
        throughput_cpu_allowed_us=600,
        throughput_cpu_used_us=500,
        throughput_cpu_nats_ops_us=150,
        throughput_cpu_each_allowed_us=300,
        throughput_cpu_each_used_us=320,
    )
    (row,) = report.budget_table(many)[2:]
    assert "| 600 us a step, 300 in one process | 500 us, at most 320 in one | 150 us | no |" in row
