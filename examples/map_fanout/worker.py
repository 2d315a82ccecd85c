"""Index a (fake) site: list its pages, fetch each page in parallel, gather a summary.

Run with: ``dagnats worker examples.map_fanout.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

from pydantic import BaseModel

import dagnats

worker = dagnats.Worker(name="map-fanout-worker", concurrency=8)

# A stand-in for the web: site -> page path -> page text.
SITES: dict[str, dict[str, str]] = {
    "docs.example": {
        "/": "Welcome to the docs",
        "/install": "pip install dagnats then run dagnats serve",
        "/workers": "A worker runs task handlers pulled from NATS",
        "/faq": "Questions and answers",
    },
    "empty.example": {},
}


class Page(BaseModel):
    url: str
    words: int
    item: int  # the map instance index that fetched it (ctx.item)


class Summary(BaseModel):
    pages: int
    words: int
    longest: str | None


@worker.task()
async def list_pages(ctx: dagnats.TaskContext, site: str) -> list[str]:
    """The list the map step fans out over (it may be empty)."""
    return [f"https://{site}{path}" for path in SITES.get(site, {})]


@worker.task(timeout="10s")
async def fetch_page(ctx: dagnats.TaskContext, url: str) -> Page:
    """Runs once per list item, on any worker; ``ctx.item`` is the item's index."""
    site, _, path = url.removeprefix("https://").partition("/")
    text = SITES[site]["/" + path]
    return Page(url=url, words=len(text.split()), item=ctx.item if ctx.item is not None else -1)


@worker.task()
async def summarize(ctx: dagnats.TaskContext, pages: list[Page]) -> Summary:
    """Gets the map's output: the results in the order of the input list."""
    longest = max(pages, key=lambda p: p.words).url if pages else None
    return Summary(pages=len(pages), words=sum(p.words for p in pages), longest=longest)
