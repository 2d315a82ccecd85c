"""One agent-loop step: at most 5 iterations, 100 ms apart, each retried once on failure."""

from __future__ import annotations

import dagnats
from examples.agent_loop.worker import research

MAX_ITERATIONS = 5

workflow = dagnats.Workflow("agent-loop", version="1.0")
workflow.agent_loop(
    research,
    max_iterations=MAX_ITERATIONS,  # the loop fails once it would need a 6th iteration
    max_duration="5m",  # ... or when it has been going for longer than this
    loop_delay="100ms",  # a durable pause (an engine timer) between iterations
    timeout="30s",  # one attempt of one iteration
    retry=dagnats.RetryPolicy(max_attempts=1, initial_delay="100ms"),  # per iteration
)
