"""Opening a NATS connection: the one ``connect`` of a nats-py client, with its errors translated.

Every process (client, CLI, ``serve``, the test harness, workers) connects through
:func:`connect`, so a refused or unreachable server is always a
:class:`~dagnats.errors.NatsUnavailableError` naming the URL, never a bare nats-py error,
and every connection carries the credentials of :class:`NatsAuth` (given, or read from the
``DAGNATS_NATS_*`` environment variables).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import (
    AuthorizationError,
    ConnectionReconnectingError,
    NoRespondersError,
    StaleConnectionError,
)
from nats.js.errors import ServiceUnavailableError

from dagnats._nats.pongs import tolerate_abandoned_pongs as tolerate_abandoned_pongs
from dagnats._nats.tasks import stop_task
from dagnats.errors import NatsUnavailableError
from dagnats.telemetry import tracing

ENV_PREFIX = "DAGNATS_NATS_"


@dataclass(frozen=True)
class NatsAuth:
    """Credentials and TLS for NATS connections (and for the embedded server's config).

    Each field has an environment variable, ``DAGNATS_NATS_`` + its name in capitals
    (``DAGNATS_NATS_USER``, ``DAGNATS_NATS_TLS_CA``...), read by :meth:`from_env`.
    """

    user: str | None = None
    """User name (with ``password``)."""
    password: str | None = None
    """Password of ``user``."""
    token: str | None = None
    """An authorization token (instead of user and password)."""
    creds: str | None = None
    """Path of a ``.creds`` file (JWT and NKey seed: operator-mode servers, NGS)."""
    tls_cert: str | None = None
    """Client certificate (PEM), with ``tls_key``; for the embedded server, its certificate."""
    tls_key: str | None = None
    """Private key of ``tls_cert`` (PEM)."""
    tls_ca: str | None = None
    """CA bundle (PEM) that signed the server's certificate."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NatsAuth:
        env = os.environ if environ is None else environ
        values = {f.name: env.get(ENV_PREFIX + f.name.upper()) or None for f in fields(cls)}
        return cls(**values)

    @property
    def authenticates(self) -> bool:
        """Whether a client has to prove who it is (user/password, token or creds)."""
        return bool((self.user and self.password) or self.token or self.creds)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert or self.tls_ca)

    def check(self) -> NatsAuth:
        """Raise ValueError naming the option when the settings do not fit together."""
        if bool(self.user) != bool(self.password):
            raise ValueError("NATS user and password go together: give both or neither")
        if self.token and self.user:
            raise ValueError("give a NATS token or a user and password, not both")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("a NATS TLS certificate needs its key (and the key its certificate)")
        for name in ("creds", "tls_cert", "tls_key", "tls_ca"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"NATS {name.replace('_', ' ')} file not found: {path}")
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client's TLS context (server verified against ``tls_ca``), or None."""
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca)
        if self.tls_cert and self.tls_key:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    def connect_options(self) -> dict[str, Any]:
        """nats-py ``connect`` keyword arguments for these settings."""
        self.check()
        options: dict[str, Any] = {}
        if self.user:
            options["user"], options["password"] = self.user, self.password
        if self.token:
            options["token"] = self.token
        if self.creds:
            options["user_credentials"] = self.creds
        context = self.ssl_context()
        if context is not None:
            options["tls"] = context
        return options


ErrorCallback = Callable[[Exception], Awaitable[None]]
Callback = Callable[[], Awaitable[None]]


CONNECT_HINT = (
    "Is it running? Start one with `dagnats serve`, or point --nats-url / DAGNATS_NATS_URL "
    "at a running server"
)


async def connect(
    url: str,
    *,
    connect_timeout_s: float = 5.0,
    max_reconnect_attempts: int = 10,
    # nats-py retries a server at once after a drop, then waits this long between tries of
    # the same server (its default, 2 s, made every recovery after a restart take ~2.3 s).
    reconnect_time_wait_s: float = 0.25,
    error_cb: ErrorCallback | None = None,
    reconnected_cb: Callback | None = None,
    auth: NatsAuth | None = None,
    closed_cb: Callback | None = None,
) -> NatsClient:
    """Connect to ``url``; ``max_reconnect_attempts=-1`` reconnects for ever after a drop.

    ``auth`` defaults to :meth:`NatsAuth.from_env`. Raises :class:`NatsUnavailableError`
    (from the nats-py error) when the first connect fails, with the last error the client
    reported, which says more than "no servers". Refused credentials and a TLS failure end
    the first connect at once: trying again cannot help (and after a failed TLS handshake
    nats-py's connect loop hangs instead of retrying).
    """
    try:
        settings = (auth if auth is not None else NatsAuth.from_env()).connect_options()
    except (ValueError, OSError, ssl.SSLError) as exc:
        raise NatsUnavailableError(f"cannot connect to NATS at {url}: {exc}") from exc
    seen: list[Exception] = []
    nc = NatsClient()
    hopeless: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    async def on_error(exc: Exception) -> None:
        seen.append(exc)
        if _hopeless(exc) and not nc.is_connected and not hopeless.done():
            hopeless.set_result(exc)
        if error_cb is not None:
            await error_cb(exc)

    options: dict[str, Any] = {
        "connect_timeout": connect_timeout_s,
        # nats-py retries a first connect as often and as slowly as a reconnect (a 20 s
        # wait for nothing with its defaults): two quick tries here, so nothing listening
        # is an error at once; the reconnect budget is set after the first success
        # (nats-py reads it at each drop).
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0.1,
        "error_cb": on_error,
        **settings,
    }
    if reconnected_cb is not None:
        options["reconnected_cb"] = reconnected_cb
    if closed_cb is not None:  # closed for good: no more reconnects
        options["closed_cb"] = closed_cb
    attempt = asyncio.ensure_future(nc.connect(server_urls(url), **options))
    either: list[asyncio.Future[Any]] = [attempt, hopeless]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not attempt.done():
        await stop_task(attempt)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), connect_timeout_s)
        raise NatsUnavailableError(
            f"cannot connect to NATS at {url}: {_describe(hopeless.result())}"
        )
    try:
        attempt.result()
    except Exception as exc:
        cause = ([e for e in seen if _hopeless(e)] or seen or [exc])[-1]
        hint = "" if _hopeless(cause) else f". {CONNECT_HINT}"
        raise NatsUnavailableError(
            f"cannot connect to NATS at {url}: {_describe(cause)}{hint}"
        ) from exc
    nc.options["max_reconnect_attempts"] = max_reconnect_attempts
    nc.options["reconnect_time_wait"] = reconnect_time_wait_s
    return tolerate_abandoned_pongs(nc)  # one timed-out flush must not stop its reads


def server_urls(url: str) -> list[str]:
    """``--nats-url`` may name several servers of a cluster, comma-separated."""
    urls = [u.strip() for u in url.split(",") if u.strip()]
    if not urls:
        raise NatsUnavailableError(f"no NATS server URL in {url!r}")
    return urls


def set_reconnect_attempts(nc: NatsClient, attempts: int) -> None:
    """Change how often ``nc`` retries after a drop (nats-py reads it on every reconnect)."""
    nc.options["max_reconnect_attempts"] = attempts


# What a request fails with while NATS restarts or elects a leader: no answer in time, no
# JetStream to answer yet (no responders, 503), the connection down or reconnecting, or
# dagnats' own translation of those. A retry once the connection is back may succeed.
_OUTAGE = (
    TimeoutError,
    NoRespondersError,
    ServiceUnavailableError,
    ConnectionReconnectingError,
    StaleConnectionError,
    ConnectionError,
    NatsUnavailableError,
)
_CAUSES_LOOKED_AT = 4  # how deep is_outage follows ``raise ... from`` chains


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says NATS is unavailable for now, as
    opposed to a refusal that a retry cannot change (a bad configuration, a conflict)."""
    seen: BaseException | None = exc
    for _ in range(_CAUSES_LOOKED_AT):
        if seen is None:
            return False
        if isinstance(seen, _OUTAGE):
            return True
        seen = seen.__cause__
    return False


def _hopeless(exc: Exception) -> bool:
    """The server refused our credentials (nats-py reports a plain ``nats.errors.Error``
    for ``-ERR 'Authorization Violation'``), or TLS failed (say, an untrusted certificate)."""
    if isinstance(exc, AuthorizationError | ssl.SSLError):
        return True
    return "authorization violation" in str(exc).lower()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def request(nc: NatsClient, subject: str, data: bytes, *, timeout_s: float) -> Msg | None:
    """A request/reply; ``None`` when nobody serves ``subject`` (nats-py's no-responders).

    Raises the builtin ``TimeoutError`` when no reply comes in ``timeout_s``.
    """
    try:
        return await nc.request(subject, data, timeout=timeout_s, headers=tracing.stamp({}) or None)
    except NoRespondersError:
        return None
