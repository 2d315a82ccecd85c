"""Methodology: auth on real sockets and a real nats-server. The HTTP API with a bearer
token (missing or wrong: 401, JSON error, ``WWW-Authenticate``); the embedded server with
user/password, a token and TLS, where a client without the credentials (or without the CA)
is refused; ``serve`` refusing to listen off loopback without auth, and running with both
kinds of auth end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import dagnats
from dagnats._nats.connection import NatsAuth
from dagnats._nats.connection import connect as connect_nats
from dagnats.errors import NatsUnavailableError, ServerError
from dagnats.server import EmbeddedNats
from dagnats.server.http import HttpGateway
from dagnats.server.serve import Serve, ServeOptions, check_exposure
from dagnats.testing import DagnatsEnv

TOKEN = "s3cret-token-0123456789"
TIMEOUT_S = 10.0
NO_AUTH = NatsAuth()


async def test_http_token_is_required_off_the_public_routes(dagnats_env: DagnatsEnv) -> None:
    gw = HttpGateway(dagnats_env.nc, port=0, token=TOKEN)
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=TIMEOUT_S) as http:
            resp = await http.get("/workflows")
            assert resp.status_code == 401
            assert resp.headers["www-authenticate"] == "Bearer"
            assert resp.json()["error"]["message"].startswith("missing bearer token")
            resp = await http.get("/workflows", headers={"Authorization": f"Bearer {TOKEN}x"})
            assert resp.status_code == 401 and "wrong" in resp.json()["error"]["message"]
            resp = await http.get("/workflows", headers={"Authorization": f"Basic {TOKEN}"})
            assert resp.status_code == 401
            resp = await http.get("/workflows", headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status_code == 200 and resp.json() == []
            # Probes and the API description stay public.
            assert (await http.get("/health")).status_code == 200
            spec = (await http.get("/openapi.json")).json()
            assert "BearerAuth" in spec["components"]["securitySchemes"]
            assert "401" in spec["paths"]["/runs"]["post"]["responses"]
    finally:
        await gw.stop()


@pytest.mark.parametrize(
    "auth",
    [NatsAuth(user="dagnats", password='pa ss"word'), NatsAuth(token="nats-token-123")],
    ids=["user-password", "token"],
)
async def test_embedded_nats_refuses_clients_without_credentials(auth: NatsAuth) -> None:
    async with EmbeddedNats(port=0, auth=auth) as server:
        started = time.monotonic()
        with pytest.raises(NatsUnavailableError, match="Authorization Violation"):
            await connect_nats(server.url, auth=NO_AUTH, reconnect_time_wait_s=2.0)
        # A refused credential is not retried for max_reconnect_attempts * 2 s.
        refused_in_s = time.monotonic() - started
        assert refused_in_s < 2.0, refused_in_s
        wrong = NatsAuth(token="wrong-token-000") if auth.user else NatsAuth(token="nope-nope")
        with pytest.raises(NatsUnavailableError, match="Authorization Violation"):
            await connect_nats(server.url, auth=wrong)
        nc = await connect_nats(server.url, auth=auth)
        try:
            assert (await nc.jetstream().account_info()).limits is not None
        finally:
            await nc.close()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    files = ["-keyout", str(key), "-out", str(cert)]
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            *files,
            *subject,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_embedded_nats_over_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_auth = NatsAuth(token="tls-token-123", tls_cert=str(cert), tls_key=str(key))
    async with EmbeddedNats(port=0, auth=server_auth) as server:
        client = NatsAuth(token="tls-token-123", tls_ca=str(cert))
        nc = await connect_nats(server.url, auth=client)
        try:
            assert nc.is_connected
        finally:
            await nc.close()
        # The server's certificate is not trusted without its CA.
        with pytest.raises(NatsUnavailableError):
            await connect_nats(server.url, auth=NatsAuth(token="tls-token-123"))


def test_nats_auth_from_env_and_bad_settings(tmp_path: Path) -> None:
    env = {"DAGNATS_NATS_USER": "u", "DAGNATS_NATS_PASSWORD": "p", "DAGNATS_NATS_TOKEN": ""}
    assert NatsAuth.from_env(env) == NatsAuth(user="u", password="p")
    assert NatsAuth.from_env(env).authenticates
    with pytest.raises(ValueError, match="user and password go together"):
        NatsAuth(user="u").check()
    with pytest.raises(ValueError, match="not both"):
        NatsAuth(user="u", password="p", token="t").check()
    with pytest.raises(ValueError, match="needs its key"):
        NatsAuth(tls_cert=str(tmp_path)).check()
    with pytest.raises(ValueError, match="creds file not found"):
        NatsAuth(creds=str(tmp_path / "none.creds")).check()


def test_serve_refuses_to_listen_off_loopback_without_auth() -> None:
    with pytest.raises(ServerError, match="--http-token"):
        check_exposure(ServeOptions(host="0.0.0.0", nats_auth=NatsAuth(token="t" * 16)))
    with pytest.raises(ServerError, match="--nats-user"):
        check_exposure(ServeOptions(host="0.0.0.0", http_token=TOKEN, nats_auth=NO_AUTH))
    with pytest.raises(ServerError, match="--http-token"):
        check_exposure(ServeOptions(http_host="::", nats_auth=NO_AUTH))
    with pytest.raises(ServerError, match="at least 16"):
        check_exposure(ServeOptions(http_token="short", nats_auth=NO_AUTH))
    check_exposure(ServeOptions(host="0.0.0.0", http_token=TOKEN, nats_auth=NatsAuth(token="t")))
    # NATS elsewhere (--nats-url) is that server's business; HTTP only binds loopback here.
    check_exposure(ServeOptions(host="0.0.0.0", nats_url="nats://x:4222", http_host="127.0.0.1"))
    check_exposure(ServeOptions(http_host="localhost", nats_auth=NO_AUTH))


def test_cli_serve_off_loopback_without_auth_is_one_line_exit_1() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dagnats", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve HTTP on 0.0.0.0" in lines[0], proc.stderr


async def test_serve_with_nats_and_http_auth_end_to_end(tmp_path: Path) -> None:
    auth = NatsAuth(user="svc", password="pw-0123456789")
    opts = ServeOptions(port=0, http_port=0, data_dir=tmp_path, http_token=TOKEN, nats_auth=auth)
    app = Serve(opts)
    await app.start()
    try:
        assert app.http is not None
        with pytest.raises(NatsUnavailableError, match="Authorization Violation"):
            await dagnats.Client.connect(app.nats_url)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=app.http.url, timeout=TIMEOUT_S) as http:
            assert (await http.get("/ready")).json() == {"ready": True}
            assert (await http.get("/runs")).status_code == 401
            wf = {
                "name": "authed",
                "steps": [{"id": "nap", "type": "sleep", "config": {"duration": "1ms"}}],
            }
            resp = await http.post("/workflows", json=wf, headers=headers)
            assert resp.status_code == 201, resp.text
            resp = await http.post("/runs", json={"workflow": "authed"}, headers=headers)
            assert resp.status_code == 201, resp.text
            run_id = resp.json()["run_id"]
        nc = await connect_nats(app.nats_url, auth=auth)
        try:
            client = dagnats.Client(nc)
            await client.run(run_id).result(timeout=TIMEOUT_S)
            assert (await client.run(run_id).status()).status == "completed"
        finally:
            await nc.close()
    finally:
        await app.stop()
