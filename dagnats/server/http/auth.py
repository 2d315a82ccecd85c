"""Bearer-token auth for the HTTP API (``--http-token`` / ``DAGNATS_HTTP_TOKEN``).

One shared token, compared in constant time. Routes a feature marks public (webhooks, which
check their own HMAC signature; ``/health`` and ``/ready`` for probes; ``/docs`` and
``/openapi.json``) do not ask for it.
"""

from __future__ import annotations

import hmac

from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from dagnats.errors import ApiError

MIN_TOKEN_LEN = 16


class Unauthorized(ApiError):
    """401 with ``WWW-Authenticate: Bearer``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=401)


def check_token(token: str) -> str:
    """A usable token (at least 16 characters, no spaces), or ValueError naming the rule."""
    if len(token) < MIN_TOKEN_LEN or any(c.isspace() for c in token):
        raise ValueError(
            f"the HTTP token must be at least {MIN_TOKEN_LEN} characters without spaces"
        )
    return token


class BearerAuth(HTTPBearer):
    """A dependency refusing requests without ``Authorization: Bearer <token>``.

    Being an ``HTTPBearer``, it also declares the security scheme in OpenAPI.
    """

    def __init__(self, token: str) -> None:
        super().__init__(auto_error=False, description="The token given to --http-token.")
        self._expected = check_token(token).encode()

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        creds = await super().__call__(request)
        if creds is None:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        if not hmac.compare_digest(creds.credentials.encode(), self._expected):
            raise Unauthorized("wrong bearer token")
        return creds
