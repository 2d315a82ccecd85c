"""Composition: the embedded nats-server, the API service, the HTTP gateway and ``serve``.

May import the roles (:mod:`dagnats.engine`, :mod:`dagnats.worker`, :mod:`dagnats.client`)
and everything below them. Other packages (the CLI, the test harness) use the names below,
not the submodules.
"""

from __future__ import annotations

from dagnats._nats.connection import NatsAuth
from dagnats.server.api import ApiService
from dagnats.server.http import HttpGateway
from dagnats.server.nats_server import PID_FILE, EmbeddedNats, default_data_dir, free_port
from dagnats.server.serve import ServeOptions, serve

__all__ = [
    "PID_FILE",
    "ApiService",
    "EmbeddedNats",
    "HttpGateway",
    "NatsAuth",
    "ServeOptions",
    "default_data_dir",
    "free_port",
    "serve",
]
