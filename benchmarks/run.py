"""Run the benchmarks: ``python -m benchmarks.run [--only NAME] [--quick] [--profile]``.

The raw-NATS floor is measured first, on a nats-server of its own (benchmarks/floor.py),
and again just before each workload (a shared machine's load moves). Each workload runs
against the engine, the API and the worker as separate processes (benchmarks/stack.py),
with this process as the client, and prints its figure next to the floor measured just
before it: a ratio, or a limit. The summary table at the end holds issue 10's four targets,
each PASS or MISS. ``--write-results`` puts the output into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import benchmarks._traced  # noqa: F401  (first: sets the tracing mode)
from benchmarks import _loop, engines, held, report, steady
from benchmarks.profile import Profiler
from benchmarks.session import Session, measure
from benchmarks.stack import Stack

HERE = Path(__file__).resolve().parent
STEADY = ("latency", "throughput", "seq40", "map")
WORKLOADS = (*STEADY, "sleepers", "restart", "rss", "engines2", "sleepers-large")
DEFAULT = WORKLOADS[:-1]  # the 100,000 sleepers only with --large (or --only)
# option -> (full count, --quick count)
COUNTS: dict[str, tuple[int, int]] = {
    "samples": (300, 30),
    "floor_samples": (1000, 200),
    "runs": (1000, 100),
    "seq_samples": (30, 5),
    "map_items": (10_000, 500),
    "sleepers": (10_000, 500),
    "large_sleepers": (100_000, 2000),
    "probes": (5, 3),
    "restart_runs": (10_000, 500),
    "rss_runs": (20_000, 1000),
}
HELP = {
    "samples": "runs one at a time for the 1-/3-step latency",
    "floor_samples": "single steps one at a time for the floor's p50 (each floor)",
    "runs": "concurrent 3-step runs for throughput (the floor sends 3x as many steps)",
    "seq_samples": "40-step runs one at a time (median)",
    "map_items": "items of the map (at most 10,000, the map step's limit)",
    "sleepers": "sleeping runs held by 'sleepers'",
    "large_sleepers": "sleeping runs held by 'sleepers-large'",
    "probes": "5 s sleeps timed beside the held runs",
    "restart_runs": "active runs while the engine is killed and restarted",
    "rss_runs": "finished 3-step runs before the engine's RSS is read",
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    ap.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these workloads (repeat or comma-separate): {', '.join(WORKLOADS)}",
    )
    ap.add_argument("--large", action="store_true", help="also hold 100,000 sleeping runs")
    ap.add_argument("--quick", action="store_true", help="small counts (unless given): a smoke run")
    for name, (full, quick) in COUNTS.items():
        flag = "--" + name.replace("_", "-")
        ap.add_argument(flag, type=int, default=None, help=f"{HELP[name]} [{full}; quick {quick}]")
    ap.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run every process on uvloop, or not [default: uvloop when installed; "
        "with --write-results: both, one after the other]",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="run the whole set N times; tally the verdicts"
    )
    ap.add_argument("--profile", action="store_true", help="py-spy the engine and worker")
    ap.add_argument("--profile-dir", type=Path, default=Path("bench-profiles"))
    ap.add_argument("--profile-top", type=int, default=15, help="functions listed per profile")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument(
        "--write-results",
        nargs="?",
        const=HERE / "RESULTS.md",
        type=Path,
        metavar="PATH",
        help="write the output and tables into PATH [benchmarks/RESULTS.md]",
    )
    ap.add_argument("--note", default="", help="a line for RESULTS.md (e.g. 'loaded machine')")
    args = ap.parse_args(argv)
    for name, (full, quick) in COUNTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.map_items > 10_000:
        ap.error("--map-items: a map step takes at most 10,000 items")
    args.workloads = _selected(ap, args)
    return args


def _selected(ap: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    if not args.only:
        return [*DEFAULT, *(["sleepers-large"] if args.large else [])]
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        ap.error(f"--only: unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    return [w for w in WORKLOADS if w in names]


def modes(args: argparse.Namespace) -> list[bool]:
    if args.uvloop is not None:
        if args.uvloop and not _loop.available():
            raise SystemExit("--uvloop: uvloop is not installed (pip install 'dagnats[fast]')")
        return [args.uvloop]
    if args.write_results is not None and _loop.available():
        return [True, False]
    return [_loop.available()]


async def session(args: argparse.Namespace, uvloop: bool) -> Session:
    floor = await measure(args.floor_samples, args.runs * 3)
    prof = None
    if args.profile:
        prof = Profiler(args.profile_dir / ("uvloop" if uvloop else "asyncio"), args.profile_top)
    s = Session(
        uvloop, floor, prof, floor_samples=args.floor_samples, floor_concurrent=args.runs * 3
    )
    s.say(f"event loop: {'uvloop' if uvloop else 'asyncio'} in every process")
    s.say(
        f"raw NATS floor at the start, one step:  p50 {floor.p50_ms:.3f} ms  "
        f"p99 {floor.p99_ms:.3f} ms  {floor.steps_per_s:.0f} steps/s"
    )
    s.figures.update(
        floor_step_p50_ms=floor.p50_ms,
        floor_step_p99_ms=floor.p99_ms,
        floor_steps_per_s=floor.steps_per_s,
    )
    await _workloads(s, args)
    return s


async def _workloads(s: Session, args: argparse.Namespace) -> None:
    chosen = args.workloads
    if any(w in chosen for w in STEADY):
        async with Stack.open(uvloop=s.uvloop) as stack:
            await steady.prepare(stack, args.map_items)
            steps: dict[str, Callable[[], Awaitable[None]]] = {
                "latency": lambda: steady.latency(s, stack, args.samples),
                "throughput": lambda: steady.throughput(s, stack, args.runs),
                "seq40": lambda: steady.seq40(s, stack, args.seq_samples),
                "map": lambda: steady.fan(s, stack, args.map_items),
            }
            for name, step in steps.items():
                if name in chosen:
                    await _guarded(s, name, step)
    held_ones: dict[str, Callable[[], Awaitable[None]]] = {
        "sleepers": lambda: held.sleepers(s, args.sleepers, args.probes),
        "restart": lambda: held.restart(s, args.restart_runs),
        "rss": lambda: held.rss(s, args.rss_runs),
        "engines2": lambda: engines.two_engines(s, args.runs),
        "sleepers-large": lambda: held.sleepers(
            s, args.large_sleepers, args.probes, tag="sleepers_large"
        ),
    }
    for name, step in held_ones.items():
        if name in chosen:
            await _guarded(s, name, step)


async def _guarded(s: Session, name: str, step: Callable[[], Awaitable[None]]) -> None:
    """One workload; its failure is reported (and fails the run) without stopping the rest."""
    try:
        await step()
    except Exception as exc:  # noqa: BLE001 - reported, and the exit status says so
        s.failures[name] = f"{type(exc).__name__}: {exc}"
        s.say(f"{name}: FAILED: {s.failures[name]}")


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    sessions = []
    for round_ in range(1, args.repeat + 1):
        for uvloop in modes(args):
            # The driver's own loop is of the same kind as the processes it starts.
            os.environ[_loop.ENV] = "1" if uvloop else "0"
            if args.repeat > 1:
                print(f"\n== round {round_} of {args.repeat} ==", flush=True)
            s = _loop.run(session(args, uvloop))
            s.round = round_
            print("\n".join(["", "issue 10's targets:", *report.target_table(s)]))
            cpu = report.budget_table(s)
            if cpu:
                print("\n".join(["", "the CPU they leave (benchmarks/budget.py):", *cpu]))
            other = report.other_table(s)
            if other:
                print("\n".join(["", "other workloads:", *other]))
            sessions.append(s)
    if args.repeat > 1:
        print("\n".join(["", *report.tally(sessions)]))
    if args.json:
        doc = [{"uvloop": s.uvloop, "round": s.round, "figures": s.figures} for s in sessions]
        print(json.dumps(sessions[0].figures if len(sessions) == 1 else doc, indent=2))
    if args.write_results is not None:
        command = shlex.join(
            ["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)]
        )
        report.write(args.write_results, sessions, command, args.note)
        print(f"wrote {args.write_results}")
    failed = [
        f"{name} ({'uvloop' if s.uvloop else 'asyncio'})" for s in sessions for name in s.failures
    ]
    if failed:
        raise SystemExit(f"failed workloads: {', '.join(failed)}")


if __name__ == "__main__":
    main()
