"""The engine + API alone in a process, to be SIGKILLed by test_engine_crash.py."""

from __future__ import annotations

import asyncio
import sys

from dagnats.server import ServeOptions, serve

if __name__ == "__main__":
    asyncio.run(serve(ServeOptions(nats_url=sys.argv[1], http=False)))
