"""pytest plugin (registered through the ``pytest11`` entry point): dagnats fixtures.

``dagnats_server`` is a private nats-server; ``dagnats_env`` a whole ``DagnatsEnv`` per test
(``@pytest.mark.dagnats(time_skipping=True)`` gives it a virtual clock).

Nothing to configure, whatever runs async tests in the project:

- an ``async def`` test that uses a dagnats fixture and carries no ``asyncio``/``anyio``
  marker gets one: ``asyncio`` when pytest-asyncio is installed (its strict mode would
  otherwise refuse the test), else ``anyio`` (anyio comes with dagnats, and its plugin runs
  the test on asyncio);
- the fixtures are plain async generators; for a test that pytest-asyncio runs they are
  handed over as pytest-asyncio fixtures (so its strict mode runs them in the test's loop),
  for an anyio test anyio runs them.

This module imports only pytest: dagnats itself (the engine, the server) is imported when a
test first uses one of its fixtures, so a project's test run does not pay for it otherwise.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dagnats.server import EmbeddedNats
    from dagnats.testing.env import DagnatsEnv

FIXTURES = ("dagnats_env", "dagnats_server")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dagnats(time_skipping=False): options of the dagnats_env fixture "
        "(time_skipping=True: a virtual clock that jumps to the next due timer)",
    )


def _only_asyncio(request: pytest.FixtureRequest) -> None:
    """anyio runs a marked test on every installed backend; nats-py needs asyncio."""
    if "anyio_backend" in request.fixturenames:
        backend = request.getfixturevalue("anyio_backend")
        name = backend if isinstance(backend, str) else backend[0]
        if name != "asyncio":
            pytest.skip(f"dagnats runs on asyncio (nats-py), not {name}")


async def _server(request: pytest.FixtureRequest) -> AsyncIterator[EmbeddedNats]:
    from dagnats.server import EmbeddedNats

    _only_asyncio(request)
    async with EmbeddedNats(port=0) as server:
        yield server


async def _env(request: pytest.FixtureRequest) -> AsyncIterator[DagnatsEnv]:
    from dagnats.testing.env import DagnatsEnv

    _only_asyncio(request)
    marker = request.node.get_closest_marker("dagnats")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    async with DagnatsEnv.start(**options) as env:
        yield env


def _clone(fn: Callable[..., Any]) -> types.FunctionType:
    """A second function object with the same code, for pytest-asyncio to mark as its own."""
    assert isinstance(fn, types.FunctionType)
    copy = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    copy.__annotations__ = fn.__annotations__
    copy.__qualname__ = fn.__qualname__
    return copy


def _asyncio_variants() -> dict[str, types.FunctionType]:
    """The fixtures' functions as pytest-asyncio marks them (empty without pytest-asyncio)."""
    try:
        import pytest_asyncio
    except ImportError:
        return {}
    variants = {"dagnats_env": _clone(_env), "dagnats_server": _clone(_server)}
    for fn in variants.values():
        pytest_asyncio.fixture(fn)  # marks ``fn`` itself; the returned definition is unused
    return variants


_ASYNCIO_VARIANTS = _asyncio_variants()


@pytest.fixture
async def dagnats_server(request: pytest.FixtureRequest) -> AsyncIterator[EmbeddedNats]:
    """A private nats-server (JetStream, free loopback port, temporary store)."""
    async for server in _server(request):
        yield server


@pytest.fixture
async def dagnats_env(request: pytest.FixtureRequest) -> AsyncIterator[DagnatsEnv]:
    """A ``DagnatsEnv`` (nats-server, engine, API, client) for one test."""
    async for env in _env(request):
        yield env


def _uses_anyio(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return item.get_closest_marker("anyio") is not None or "anyio_backend" in names


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Collector, name: str, obj: object
) -> Generator[None, Any, None]:
    # trylast: this wrapper sits inside pytest-asyncio's, so the marker added here is seen
    # when pytest-asyncio turns coroutine tests into its own items.
    outcome = yield
    result = outcome.get_result()
    items = result if isinstance(result, list) else [result]
    for item in items:
        if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(item.obj):
            continue
        if not set(FIXTURES) & set(item.fixturenames):
            continue
        if item.get_closest_marker("asyncio") is not None or _uses_anyio(item):
            continue
        has_asyncio = item.config.pluginmanager.has_plugin("asyncio")
        item.add_marker(pytest.mark.asyncio if has_asyncio else pytest.mark.anyio)


_ORIGINALS: dict[str, Any] = {}


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Generator[None]:
    # The outermost wrapper: pytest-asyncio's own wrapper must see the chosen function.
    # The choice stays in place until the next set-up of this fixture: pytest-asyncio looks
    # at it again when it calls the test.
    variant = _ASYNCIO_VARIANTS.get(fixturedef.argname)
    if variant is not None:
        original = _ORIGINALS.setdefault(fixturedef.argname, fixturedef.func)
        node = request.node
        by_asyncio = not _uses_anyio(node) and node.get_closest_marker("asyncio") is not None
        fixturedef.func = variant if by_asyncio else original
    yield
