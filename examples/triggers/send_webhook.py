"""POST a signed webhook: ``python -m examples.triggers.send_webhook``.

Needs ``dagnats serve`` (HTTP on :8080), the worker, and ``reports.json`` registered.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys

import httpx

SECRET = "change-me-please"  # the webhook's secret in reports.json


def signature(secret: str, body: bytes) -> str:
    """``X-Signature-256``: ``sha256=`` + the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def main(base_url: str = "http://127.0.0.1:8080") -> None:
    body = json.dumps({"orders": [{"id": 1, "amount": 12}, {"id": 2, "amount": 30}]}).encode()
    resp = httpx.post(
        f"{base_url}/hooks/shop/orders",
        content=body,
        headers={"X-Signature-256": signature(SECRET, body), "Content-Type": "application/json"},
    )
    print(resp.status_code, resp.json())


if __name__ == "__main__":
    main(*sys.argv[1:])
