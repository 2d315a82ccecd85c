"""``/docs``: the Swagger UI of the OpenAPI document, served from the package.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN, which fails offline and in
air-gapped deployments (the console has the same rule: nothing fetched from elsewhere). The
assets come from ``swagger-ui-bundle``, a wheel that ships them.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"


def install(app: FastAPI, *, openapi_url: str) -> None:
    """Add ``GET /docs`` and its assets under ``/docs/assets`` to ``app``."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title}: REST API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        )
