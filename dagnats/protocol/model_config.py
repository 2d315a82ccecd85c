"""The pydantic configuration of the wire models read on the hot paths (history events,
task, timer and control messages, run states, log records): one, so every reader agrees.
(Definitions and trigger records, read rarely, keep their own strict configurations.)

- ``extra="ignore"``: an older reader accepts a newer writer's message.
- ``cache_strings="keys"``: pydantic-core caches the strings it builds while parsing JSON
  (16,384 entries by default, keys and values alike) and keeps them after the model is
  gone. Every run id, step output and error text read on the hot path then stayed alive
  after a burst, scattered over the memory the burst had used, so Python could not give
  that memory back (issue 10: ~3,000 such strings after 3,000 runs, found with
  ``tracemalloc``). Keys repeat and are worth caching; values mostly do not, and parsing
  without caching them measured faster too (5.0 against 5.8 us for a small event).
"""

from __future__ import annotations

from pydantic import ConfigDict

WIRE_CONFIG = ConfigDict(extra="ignore", cache_strings="keys")
