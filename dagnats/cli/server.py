"""Long-running processes: ``serve``, ``engine``, ``api`` and ``worker``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dagnats.cli.common import (
    DEFAULT_NATS_URL,
    CliError,
    NatsUrlOpt,
    execute,
    fail,
    open_nats,
    setup_logging,
)
from dagnats.cli.loader import resolve
from dagnats.server import ServeOptions, serve

MAX_LEAF_REMOTES = 10

LogLevelOpt = Annotated[
    str, typer.Option("--log-level", help="debug, info, warning or error.", show_default=True)
]
ReplicasOpt = Annotated[
    int,
    typer.Option("--replicas", min=1, max=5, help="Replicas of streams and buckets it creates."),
]


def serve_cmd(
    port: Annotated[int, typer.Option("--port", help="Port of the embedded NATS server.")] = 4222,
    http_port: Annotated[int, typer.Option("--http-port", help="Port of the HTTP gateway.")] = 8080,
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
    log_level: LogLevelOpt = "info",
) -> None:
    """Run everything in one process: embedded NATS, engine, API and HTTP gateway."""
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
    )
    _run_serve(opts)


def engine_cmd(
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    replicas: ReplicasOpt = 1,
    log_level: LogLevelOpt = "info",
) -> None:
    """Run only the workflow engine against an existing NATS."""
    setup_logging(log_level)
    _run_serve(
        ServeOptions(
            nats_url=nats_url,
            replicas=replicas,
            engine=True,
            api=False,
            http=False,
            triggers=False,
        )
    )


def api_cmd(
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    replicas: ReplicasOpt = 1,
    log_level: LogLevelOpt = "info",
) -> None:
    """Run only the API service (dagnats.api.>) against an existing NATS."""
    setup_logging(log_level)
    _run_serve(
        ServeOptions(
            nats_url=nats_url,
            replicas=replicas,
            engine=False,
            api=True,
            http=False,
            triggers=False,
        )
    )


def triggers_cmd(
    nats_url: NatsUrlOpt = DEFAULT_NATS_URL,
    http_port: Annotated[
        int | None,
        typer.Option(
            "--http-port",
            help="Also serve webhooks and HTTP triggers (and the REST API) on this port.",
        ),
    ] = None,
    replicas: ReplicasOpt = 1,
    log_level: LogLevelOpt = "info",
) -> None:
    """Run only the trigger service (cron, subjects, debounce) against an existing NATS."""
    setup_logging(log_level)
    _run_serve(
        ServeOptions(
            nats_url=nats_url,
            replicas=replicas,
            engine=False,
            api=False,
            http=http_port is not None,
            http_port=http_port or 0,
            triggers=True,
        )
    )


def _run_serve(opts: ServeOptions) -> None:
    async def main() -> None:
        if opts.nats_url is not None:
            await check_reachable(opts.nats_url)
        await serve(opts)

    execute(main)


def _is_worker(obj: Any) -> bool:
    from dagnats.worker import Worker

    return isinstance(obj, Worker)


def worker_cmd(
    spec: Annotated[str, typer.Argument(metavar="MODULE:ATTR", help="Where the Worker is.")],
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            envvar="DAGNATS_NATS_URL",
            show_envvar=True,
            help="NATS server [default: the Worker's own nats_url].",
        ),
    ] = None,
    log_level: LogLevelOpt = "info",
) -> None:
    """Run a Worker defined in a module (ATTR: a Worker or a function returning one).

    The current directory is importable, so `dagnats worker tasks:worker` finds ./tasks.py.
    """
    setup_logging(log_level)
    try:
        worker = resolve(spec, _is_worker, "a dagnats.Worker")
    except CliError as exc:
        fail(str(exc), exc.code)
    if nats_url is not None:
        worker.nats_url = nats_url

    async def main() -> None:
        await check_reachable(worker.nats_url)
        await worker.run()

    execute(main)


async def check_reachable(url: str) -> None:
    """Fail with one clear line if nothing answers at ``url`` (the long-running parts
    reconnect forever once started, which would hide a typo in the URL)."""
    nc = await open_nats(url)
    await nc.close()
