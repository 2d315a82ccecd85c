"""The HTTP bridge for workers in any language (``/v1``): see docs/http.md."""

from __future__ import annotations

from dagnats.server.bridge.routes import SERVICE, router
from dagnats.server.bridge.service import Bridge

__all__ = ["SERVICE", "Bridge", "router"]
