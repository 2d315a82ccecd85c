"""What tracing costs: ``python -m benchmarks.tracing [--pairs 3] [--samples 300] [--runs 500]``.

Runs ``benchmarks.run`` (engine + API, worker and client in three processes) alternately
with OpenTelemetry absent, installed but off (no SDK), and on (the SDK recording every span,
exported in batches to a dropping exporter), ``--pairs`` times each, and prints the median
3-step latency and throughput of each mode and their ratios to "absent". Alternating keeps
a noisy machine's drift out of the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("absent", "off", "on")


def one(mode: str, samples: int, runs: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGNATS_BENCH_TRACING": mode}
    cmd = [sys.executable, "-m", "benchmarks.run", "--only", "latency,throughput"]
    cmd += ["--samples", str(samples)]
    out = subprocess.run(
        [*cmd, "--runs", str(runs), "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    doc: dict[str, float] = json.loads(out[out.index("{") :])
    return doc


def micro(steps: int) -> dict[str, float]:
    """µs of tracing CPU per step in each mode (no NATS: the calls a step makes)."""
    out: dict[str, float] = {}
    for mode in MODES:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGNATS_BENCH_TRACING": mode}
        line = subprocess.run(
            [sys.executable, "-m", "benchmarks._tracing_micro", str(steps)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
        out[mode] = json.loads(line)["us_per_step"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--micro-steps", type=int, default=20_000)
    args = ap.parse_args()
    for mode, us in micro(args.micro_steps).items():
        print(f"tracing CPU per step, {mode:>6}: {us:.1f} µs", flush=True)
    got: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for i in range(args.pairs):
        for mode in MODES:
            r = one(mode, args.samples, args.runs)
            got[mode].append(r)
            print(
                f"round {i + 1} {mode:>6}: 3-step p50 {r['run3_p50_ms']:.2f} ms "
                f"(floor {r['floor_step_p50_ms']:.3f} ms), "
                f"{r['throughput_steps_per_s']:.0f} steps/s",
                flush=True,
            )
    base_lat = statistics.median(r["run3_p50_ms"] for r in got["absent"])
    base_tput = statistics.median(r["throughput_steps_per_s"] for r in got["absent"])
    for mode in MODES:
        lat = statistics.median(r["run3_p50_ms"] for r in got[mode])
        tput = statistics.median(r["throughput_steps_per_s"] for r in got[mode])
        print(
            f"{mode:>6}: median 3-step p50 {lat:.2f} ms ({lat / base_lat:.2f}x absent), "
            f"median throughput {tput:.0f} steps/s ({tput / base_tput:.2f}x absent)"
        )


if __name__ == "__main__":
    main()
