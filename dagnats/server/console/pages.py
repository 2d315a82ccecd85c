"""The console's page and assets: ``GET /`` redirects to ``/console/``, which is one HTML
page, a stylesheet and a script shipped in the package (no build step, nothing from a CDN).

They hold no data, so they are public: every piece of data comes from ``/console/api``,
behind the REST token (the page asks for it once and keeps it for the tab).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response

router = APIRouter(include_in_schema=False)

ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
HEADERS = {
    "Cache-Control": "no-cache",  # revalidated: a new dagnats version is picked up at once
    "X-Content-Type-Options": "nosniff",
    # Only this origin's own script, style and API; no inline script, nothing remote.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
}


@cache
def asset(name: str) -> bytes:
    return files("dagnats.server.console").joinpath("static", name).read_bytes()


def _serve(name: str) -> Response:
    return Response(asset(name), media_type=ASSETS[name], headers=HEADERS)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/console")
async def console_no_slash() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/")
async def index() -> Response:
    return _serve("index.html")


@router.get("/console/static/{name}")
async def static(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, f"no console asset {name!r}")
    return _serve(name)
