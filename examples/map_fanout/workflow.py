"""list_pages -> map(fetch_page) -> summarize."""

from __future__ import annotations

import dagnats
from examples.map_fanout.worker import fetch_page, list_pages, summarize

workflow = dagnats.Workflow("map-fanout", version="1.0")
pages = workflow.step(list_pages)
fetched = workflow.map(
    "fetch",
    task=fetch_page,
    depends_on=[pages],  # a map step has exactly one dependency: the list to map over
    max_items=100,  # a longer list fails the step (without retry)
    concurrency=2,  # at most two instances in flight at once
    retry=dagnats.RetryPolicy(max_attempts=2, initial_delay="100ms"),  # per instance
)
workflow.step(summarize, depends_on=[fetched])
