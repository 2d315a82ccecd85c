"""Where the task of an ``agent`` step goes: a deployment's *agent routes* (pure).

Go's engine sends every ``agent`` step to a subject prefix configured on the engine
(``WithStepRoutes``) and never reads ``metadata.role`` (its agent runtime does). dagnats has
one task stream, and a worker takes ``task.<task>[.<group>]``, so its routes pick a worker
*group* by the step's ``metadata.role``: ``{"coder": "gpu", "*": "agents"}`` sends the coder
agents to the workers of group ``gpu`` and every other agent step to group ``agents``. A
step's own ``worker_group`` always wins; no route (the default) leaves the task on
``task.<task>``, as for a ``normal`` step. See ADR 0011 and docs/step-types.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagnats.protocol.limits import LimitError, check_name

ANY_ROLE = "*"
"""The route of every agent step whose role has no route of its own (Go's route by type)."""
MAX_AGENT_ROUTES = 100
MAX_ROLE_LEN = 128


def check_agent_routes(routes: Mapping[str, str]) -> dict[str, str]:
    """``routes`` as a plain dict if every role and group is valid, else :class:`LimitError`
    naming the route and the rule."""
    if len(routes) > MAX_AGENT_ROUTES:
        raise LimitError(
            f"agent routes: {len(routes)} routes; the limit is {MAX_AGENT_ROUTES} "
            "(MAX_AGENT_ROUTES)"
        )
    out: dict[str, str] = {}
    for role, group in routes.items():
        if not isinstance(role, str) or not role or len(role) > MAX_ROLE_LEN:
            raise LimitError(
                f"agent route {role!r}: a role is 1 to {MAX_ROLE_LEN} characters (MAX_ROLE_LEN)"
            )
        out[role] = check_name(group, f"worker group of agent route {role!r}")
    return out


def parse_agent_routes(specs: Iterable[str]) -> dict[str, str]:
    """``ROLE=GROUP`` strings (a command line's ``--agent-route``) as checked routes."""
    routes: dict[str, str] = {}
    for spec in specs:
        role, sep, group = spec.partition("=")
        if not sep:
            raise LimitError(f"agent route {spec!r}: write ROLE=GROUP (e.g. coder=gpu, *=agents)")
        if role in routes:
            raise LimitError(f"agent route {spec!r}: role {role!r} is routed twice")
        routes[role] = group
    return check_agent_routes(routes)


def agent_group(
    metadata: Mapping[str, Any] | None, worker_group: str | None, routes: Mapping[str, str]
) -> str | None:
    """The worker group of an agent step's task: its own, else its role's route, else the
    ``*`` route, else none (the task's ungrouped subject)."""
    if worker_group is not None or not routes:
        return worker_group
    role = (metadata or {}).get("role")
    if isinstance(role, str) and role in routes:
        return routes[role]
    return routes.get(ANY_ROLE)
