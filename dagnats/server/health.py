"""The health of each part of a ``serve`` process, asked live (never a flag set once).

Each part registers a probe: a function answering ``(healthy, detail)`` from the part's
own state at the moment it is asked (the NATS connection is connected, the engine's loop
is running, the embedded nats-server process is alive ...). ``/ready`` is 200 only while
every probe says healthy, and its body names the parts, so a load balancer stops sending
work to a process whose connection is gone instead of being told "ready" by a flag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dagnats._nats.types import NatsClient

Probe = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class PartHealth:
    name: str
    """The part: ``nats``, ``nats-server``, ``api``, ``engine``, ``http`` ..."""
    healthy: bool
    """Whether the part can do its work now."""
    detail: str
    """Why not, or what it is doing (``connected to nats://...``)."""


class Health:
    """Probes by part; :meth:`ready` is true when there is at least one and all pass."""

    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}

    def add(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe

    def remove(self, name: str) -> None:
        self._probes.pop(name, None)

    def parts(self) -> list[PartHealth]:
        out = []
        for name, probe in self._probes.items():
            try:
                healthy, detail = probe()
            except Exception as exc:  # noqa: BLE001 - a probe that fails says "unhealthy"
                healthy, detail = False, f"probe failed: {type(exc).__name__}: {exc}"
            out.append(PartHealth(name, healthy, detail))
        return out

    def ready(self) -> bool:
        parts = self.parts()
        return bool(parts) and all(p.healthy for p in parts)

    def report(self) -> dict[str, object]:
        """``{"ready": bool, "parts": {name: {"healthy": bool, "detail": str}}}``."""
        parts = self.parts()
        return {
            "ready": bool(parts) and all(p.healthy for p in parts),
            "parts": {p.name: {"healthy": p.healthy, "detail": p.detail} for p in parts},
        }


def connection_probe(nc: NatsClient) -> Probe:
    """Healthy while ``nc`` is connected; reconnecting and closed are not."""

    def probe() -> tuple[bool, str]:
        if nc.is_closed:
            return False, "connection to NATS closed"
        if nc.is_reconnecting:
            return False, "reconnecting to NATS"
        if not nc.is_connected:
            return False, "not connected to NATS"
        return True, f"connected to {nc.connected_url.netloc if nc.connected_url else 'NATS'}"

    return probe
