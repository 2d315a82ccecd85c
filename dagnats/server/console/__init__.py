"""The web console at ``/console/``: runs, a run's DAG and timeline, workflows, triggers,
dead letters and workers, updated live over SSE (docs/console.md).

``routes()`` gives ``serve`` the console's routers: the page and its assets (public: they
hold no data) and the JSON and SSE API (behind the same bearer token as REST).
"""

from __future__ import annotations

from dagnats.server.console import data, live, pages
from dagnats.server.http.app import Routes


def routes() -> list[Routes]:
    return [Routes(pages.router, public=True), Routes(data.router), Routes(live.router)]


__all__ = ["routes"]
