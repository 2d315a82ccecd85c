"""``is_outage``: which failures a start tries again (NATS unavailable for now) and which
it raises at once (a refusal a retry cannot change), including through ``raise ... from``.
The 503 and reconnecting errors nats-py raises are met for real in
tests/integration/test_worker_start_outage.py."""

from __future__ import annotations

import pytest

from dagnats._nats.connection import is_outage
from dagnats._nats.types import NatsTimeoutError, NoRespondersError, NotFoundError
from dagnats.errors import DagnatsError, NatsUnavailableError


def _raised_from(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    "exc",
    [
        NatsTimeoutError(),
        NoRespondersError(),
        TimeoutError(),
        ConnectionResetError(),
        NatsUnavailableError("JetStream did not answer"),
        _raised_from(DagnatsError("cannot create consumer"), NatsTimeoutError()),
    ],
    ids=repr,
)
def test_an_outage_is_tried_again(exc: BaseException) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        DagnatsError("another consumer already filters task.a"),
        NotFoundError(),
        ValueError("bad option"),
        _raised_from(DagnatsError("cannot create consumer"), ValueError("bad")),
    ],
    ids=repr,
)
def test_a_refusal_is_not(exc: BaseException) -> None:
    assert not is_outage(exc)


def test_a_long_chain_is_looked_at_only_so_deep() -> None:
    exc: BaseException = NatsTimeoutError()
    for _ in range(10):
        exc = _raised_from(DagnatsError("wrapped"), exc)
    assert not is_outage(exc)
