"""The benchmark worker in its own process (benchmark helper)."""

from __future__ import annotations

import sys

import benchmarks._traced  # noqa: F401  (first: sets the tracing mode)
from benchmarks import _loop
from benchmarks.workload import worker

if __name__ == "__main__":
    worker.nats_url = sys.argv[1]
    _loop.run(worker.run(), long_running=True)
