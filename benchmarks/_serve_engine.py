"""Engine and/or API in their own process, against an existing NATS (benchmark helper).

``python -m benchmarks._serve_engine URL [engine|api|both] [ENGINE_ID]``: the driver runs the engine
and the API as two processes, so the engine's RSS, profile and restart are its own.
"""

from __future__ import annotations

import sys

import benchmarks._traced  # noqa: F401  (first: sets the tracing mode)
from benchmarks import _loop
from dagnats.server import ServeOptions, serve

ROLES = ("engine", "api", "both")

if __name__ == "__main__":
    role = sys.argv[2] if len(sys.argv) > 2 else "both"
    if role not in ROLES:
        raise SystemExit(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    opts = ServeOptions(
        nats_url=sys.argv[1],
        http=False,
        triggers=False,
        engine=role in ("engine", "both"),
        api=role in ("api", "both"),
        # Stable: the restart workload's new engine takes the killed one's partitions back
        # at once, as a restarted `serve` does (ADR 0013).
        engine_id=sys.argv[3] if len(sys.argv) > 3 else "bench-engine",
    )
    _loop.run(serve(opts), long_running=True)
