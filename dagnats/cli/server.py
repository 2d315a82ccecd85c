"""Long-running processes: ``serve``, ``engine``, ``api`` and ``worker``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dagnats.cli.common import (
    DEFAULT_NATS_URL,
    NatsUrlOpt,
    execute,
    open_nats,
    setup_logging,
)
from dagnats.cli.loop import UvloopOpt
from dagnats.dag.definition.agents import parse_agent_routes
from dagnats.protocol.durations import parse_long_duration
from dagnats.protocol.limits import LimitError
from dagnats.protocol.partitions import check_engine_id
from dagnats.server import NatsAuth, ServeOptions, serve

MAX_LEAF_REMOTES = 10


def _env_opt(flag: str, env: str, help_text: str) -> Any:
    return typer.Option(flag, envvar=env, show_envvar=True, help=help_text)


HostOpt = Annotated[
    str,
    typer.Option(
        "--host",
        help="Address NATS and HTTP listen on; off loopback only with auth (see --http-token, "
        "--nats-user, --nats-token).",
    ),
]
HttpHostOpt = Annotated[
    str | None, typer.Option("--http-host", help="Address of the HTTP API [default: --host].")
]
HttpTokenOpt = Annotated[
    str | None,
    _env_opt(
        "--http-token", "DAGNATS_HTTP_TOKEN", "Bearer token the HTTP API asks for (16+ chars)."
    ),
]
NatsUserOpt = Annotated[
    str | None, _env_opt("--nats-user", "DAGNATS_NATS_USER", "NATS user (with a password).")
]
NatsPasswordOpt = Annotated[
    str | None, _env_opt("--nats-password", "DAGNATS_NATS_PASSWORD", "NATS password.")
]
NatsTokenOpt = Annotated[
    str | None, _env_opt("--nats-token", "DAGNATS_NATS_TOKEN", "NATS authorization token.")
]
NatsCredsOpt = Annotated[
    str | None,
    _env_opt("--nats-creds", "DAGNATS_NATS_CREDS", "NATS .creds file (with --nats-url)."),
]
NatsTlsCertOpt = Annotated[
    str | None,
    _env_opt("--nats-tls-cert", "DAGNATS_NATS_TLS_CERT", "TLS certificate (PEM) of NATS."),
]
NatsTlsKeyOpt = Annotated[
    str | None, _env_opt("--nats-tls-key", "DAGNATS_NATS_TLS_KEY", "Key of --nats-tls-cert.")
]
NatsTlsCaOpt = Annotated[
    str | None,
    _env_opt("--nats-tls-ca", "DAGNATS_NATS_TLS_CA", "CA (PEM) that signed the server's cert."),
]

LogLevelOpt = Annotated[
    str, typer.Option("--log-level", help="debug, info, warning or error.", show_default=True)
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics (0: a free port).",
    ),
]


def _retention(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        ns = parse_long_duration(value)  # days too: "30d", "7d12h"
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--retention") from exc
    if ns <= 0:
        raise typer.BadParameter("must be positive", param_hint="--retention")
    return ns / 1e9


def _engine_id(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_engine_id(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--engine-id") from exc


RetentionOpt = Annotated[
    str | None,
    typer.Option(
        "--retention",
        envvar="DAGNATS_RETENTION",
        show_envvar=True,
        help="Remove finished runs this long after they finished (e.g. 30d) [default: kept].",
    ),
]
AgentRouteOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--agent-route",
        metavar="ROLE=GROUP",
        help="ROLE=GROUP: send agent steps whose metadata.role is ROLE to worker group GROUP "
        "(ROLE '*': any agent step; repeatable).",
    ),
]
ReplicasOpt = Annotated[
    int,
    typer.Option(
        "--replicas",
        min=1,
        max=5,
        envvar="DAGNATS_REPLICAS",
        show_envvar=True,
        help="Replicas of streams and buckets it creates (existing ones are never lowered).",
    ),
]


def _agent_routes(specs: list[str] | None) -> dict[str, str]:
    try:
        return parse_agent_routes(specs or [])
    except LimitError as exc:
        raise typer.BadParameter(str(exc), param_hint="--agent-route") from None


PartitionsOpt = Annotated[
    int | None,
    typer.Option(
        "--partitions",
        min=1,
        max=256,
        envvar="DAGNATS_PARTITIONS",
        show_envvar=True,
        help="History partitions, set when the history stream is created and fixed after; "
        "engines share them [default: 8, or the existing stream's].",
    ),
]


EngineIdOpt = Annotated[
    str | None,
    typer.Option(
        "--engine-id",
        envvar="DAGNATS_ENGINE_ID",
        show_envvar=True,
        help="This engine's name in the partition leases: a stable one lets a restart take "
        "its partitions back at once; never two running engines with one id "
        "[default: random; serve-<host> for serve with its embedded NATS].",
    ),
]


def serve_cmd(
    port: Annotated[int, typer.Option("--port", help="Port of the embedded NATS server.")] = 4222,
    http_port: Annotated[int, typer.Option("--http-port", help="Port of the HTTP API.")] = 8080,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="JetStream store of the embedded server [default: the platform data dir].",
        ),
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            help="Use this NATS instead of starting an embedded one "
            "(DAGNATS_NATS_URL is deliberately not read here).",
        ),
    ] = None,
    nats_server: Annotated[
        str | None, typer.Option("--nats-server", help="Path of the nats-server binary.")
    ] = None,
    leaf_remote: Annotated[
        list[str] | None,
        typer.Option("--leaf-remote", help="Hub URL to join as a leaf node (repeatable, ≤ 10)."),
    ] = None,
    replicas: ReplicasOpt = 1,
    retention: RetentionOpt = None,
    agent_route: AgentRouteOpt = None,
    partitions: PartitionsOpt = None,
    engine_id: EngineIdOpt = None,
    log_level: LogLevelOpt = "info",
    host: HostOpt = "127.0.0.1",
    http_host: HttpHostOpt = None,
    http_token: HttpTokenOpt = None,
    nats_user: NatsUserOpt = None,
    nats_password: NatsPasswordOpt = None,
    nats_token: NatsTokenOpt = None,
    nats_creds: NatsCredsOpt = None,
    nats_tls_cert: NatsTlsCertOpt = None,
    nats_tls_key: NatsTlsKeyOpt = None,
    nats_tls_ca: NatsTlsCaOpt = None,
    uvloop: UvloopOpt = True,
) -> None:
    """Run everything in one process: embedded NATS, engine, API and HTTP API."""
    auth = NatsAuth(
        nats_user, nats_password, nats_token, nats_creds, nats_tls_cert, nats_tls_key, nats_tls_ca
    )
    remotes = list(leaf_remote or [])
    if len(remotes) > MAX_LEAF_REMOTES:
        raise typer.BadParameter(
            f"at most {MAX_LEAF_REMOTES} leaf remotes are allowed, got {len(remotes)}",
            param_hint="--leaf-remote",
        )
    if nats_url is not None and remotes:
        raise typer.BadParameter(
            "leaf remotes configure the embedded server; they cannot be used with --nats-url",
            param_hint="--leaf-remote",
        )
    setup_logging(log_level)
    opts = ServeOptions(
        port=port,
        http_port=http_port,
        data_dir=data_dir,
        nats_url=nats_url,
        nats_server=nats_server,
        leaf_remotes=remotes,
        replicas=replicas,
        retention_s=_retention(retention),
        agent_routes=_agent_routes(agent_route),
        partitions=partitions,
        engine_id=_engine_id(engine_id),
        host=host,
        http_host=http_host,
        http_token=http_token,
        nats_auth=auth,
    )
    _run_serve(opts, uvloop)


def engine_cmd(
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    replicas: ReplicasOpt = 1,
    metrics_port: MetricsPortOpt = None,
    log_level: LogLevelOpt = "info",
    retention: RetentionOpt = None,
    agent_route: AgentRouteOpt = None,
    partitions: PartitionsOpt = None,
    engine_id: EngineIdOpt = None,
    uvloop: UvloopOpt = True,
) -> None:
    """Run only the workflow engine against an existing NATS. Start it several times to
    share the history partitions between engines (docs/operations.md)."""
    setup_logging(log_level)
    _run_serve(
        ServeOptions(
            nats_url=nats_url,
            replicas=replicas,
            retention_s=_retention(retention),
            agent_routes=_agent_routes(agent_route),
            partitions=partitions,
            engine_id=_engine_id(engine_id),
            engine=True,
            api=False,
            http=False,
            metrics_port=metrics_port,
            triggers=False,
        ),
        uvloop,
    )


def api_cmd(
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    replicas: ReplicasOpt = 1,
    log_level: LogLevelOpt = "info",
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="Serve the HTTP API too, on this port.")
    ] = None,
    http_host: Annotated[
        str, typer.Option("--http-host", help="Address of the HTTP API.")
    ] = "127.0.0.1",
    http_token: HttpTokenOpt = None,
    uvloop: UvloopOpt = True,
) -> None:
    """Run only the API service (dagnats.api.>), and with --http-port the HTTP API, against
    an existing NATS (credentials from the DAGNATS_NATS_* variables)."""
    setup_logging(log_level)
    opts = ServeOptions(
        nats_url=nats_url,
        replicas=replicas,
        engine=False,
        api=True,
        http=http_port is not None,
        http_port=http_port or 0,
        http_host=http_host,
        http_token=http_token,
        triggers=False,
    )
    _run_serve(opts, uvloop)


def triggers_cmd(
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    http_port: Annotated[
        int | None,
        typer.Option(
            "--http-port",
            help="Also serve webhooks and HTTP triggers (and the REST API) on this port.",
        ),
    ] = None,
    http_host: Annotated[
        str, typer.Option("--http-host", help="Address of the HTTP API.")
    ] = "127.0.0.1",
    http_token: HttpTokenOpt = None,
    replicas: ReplicasOpt = 1,
    log_level: LogLevelOpt = "info",
) -> None:
    """Run only the trigger service (cron, subjects, debounce) against an existing NATS;
    with --http-port also the webhooks and HTTP triggers."""
    setup_logging(log_level)
    opts = ServeOptions(
        nats_url=nats_url,
        replicas=replicas,
        engine=False,
        api=False,
        http=http_port is not None,
        http_port=http_port or 0,
        http_host=http_host,
        http_token=http_token,
        triggers=True,
    )
    _run_serve(opts)


def _run_serve(opts: ServeOptions, use_uvloop: bool = False) -> None:
    async def main() -> None:
        if opts.nats_url is not None:
            await check_reachable(opts.nats_url, opts.nats_auth)
        await serve(opts)

    execute(main, use_uvloop=use_uvloop, long_running=True)


async def check_reachable(url: str, auth: NatsAuth | None = None) -> None:
    """Fail with one clear line if nothing answers at ``url`` (the long-running parts
    reconnect forever once started, which would hide a typo in the URL)."""
    nc = await open_nats(url, auth)
    await nc.close()
