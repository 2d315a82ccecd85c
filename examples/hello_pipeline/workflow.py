"""The hello pipeline as a Python builder (compiles to the same JSON as pipeline.json)."""

from __future__ import annotations

import dagnats
from examples.hello_pipeline.worker import greet, reverse, uppercase

workflow = dagnats.Workflow(
    "hello-pipeline",
    version="1.0",
    default_retry=dagnats.RetryPolicy(
        max_attempts=2, strategy="fixed", initial_delay="5s", max_delay="5s"
    ),
)
g = workflow.step(greet, timeout="30s")
u = workflow.step(uppercase, depends_on=[g])
workflow.step(
    reverse,
    depends_on=[u],
    retry=dagnats.RetryPolicy(
        max_attempts=3, strategy="exponential", initial_delay="1s", max_delay="30s"
    ),
)
