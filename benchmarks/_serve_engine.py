"""Engine + API alone, in their own process, against an existing NATS (benchmark helper)."""

from __future__ import annotations

import asyncio
import sys

import benchmarks._traced  # noqa: F401  (first: sets the tracing mode)
from dagnats.server import ServeOptions, serve

if __name__ == "__main__":
    asyncio.run(serve(ServeOptions(nats_url=sys.argv[1], http=False)))
