"""The import pipeline; ``enrich`` retries twice quickly before its run fails."""

from __future__ import annotations

import dagnats
from examples.redrive.worker import enrich, extract, load

workflow = dagnats.Workflow("import-records")
e = workflow.step(extract)
n = workflow.step(
    enrich,
    depends_on=[e],
    retry=dagnats.RetryPolicy(max_attempts=2, strategy="fixed", initial_delay="50ms"),
)
workflow.step(load, depends_on=[n])
