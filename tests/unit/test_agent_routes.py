"""The agent routes of a deployment (``metadata.role`` -> worker group): parsing, bounds and
the choice of group, pure. The routing itself runs on a real server in
tests/integration/test_agent_routes.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dagnats.cli import app
from dagnats.dag.definition.agents import (
    MAX_AGENT_ROUTES,
    agent_group,
    check_agent_routes,
    parse_agent_routes,
)
from dagnats.protocol.limits import LimitError

ROUTES = {"coder": "gpu", "*": "agents"}


def test_the_group_is_the_steps_own_then_its_roles_then_the_any_route() -> None:
    assert agent_group({"role": "coder"}, None, ROUTES) == "gpu"
    assert agent_group({"role": "writer"}, None, ROUTES) == "agents"
    assert agent_group(None, None, ROUTES) == "agents"
    assert agent_group({"role": 7}, None, {"coder": "gpu"}) is None  # not a string: no route
    assert agent_group({"role": "coder"}, "mine", ROUTES) == "mine"
    assert agent_group({"role": "coder"}, None, {}) is None


def test_routes_parse_from_role_equals_group() -> None:
    assert parse_agent_routes(["coder=gpu", "*=agents"]) == ROUTES


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["coder"], "write ROLE=GROUP"),
        (["coder=gpu", "coder=cpu"], "routed twice"),
        (["coder=a.b"], "invalid worker group of agent route 'coder'"),
        (["=gpu"], "a role is 1 to 128 characters"),
        ([f"r{i}=g" for i in range(MAX_AGENT_ROUTES + 1)], "the limit is 100 (MAX_AGENT_ROUTES)"),
    ],
)
def test_a_bad_route_is_refused_naming_it(specs: list[str], message: str) -> None:
    with pytest.raises(LimitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_agent_routes(specs)


def test_the_engine_options_are_checked_too() -> None:
    with pytest.raises(LimitError, match="worker group of agent route 'coder'"):
        check_agent_routes({"coder": "no spaces"})


def test_serve_refuses_a_bad_route_before_starting_anything() -> None:
    result = CliRunner().invoke(app, ["serve", "--agent-route", "coder"])
    assert result.exit_code == 2
    assert "--agent-route" in result.output and "ROLE=GROUP" in result.output
