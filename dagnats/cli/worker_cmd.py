"""``dagnats worker MODULE:ATTR``: run a user's Worker, waiting for NATS if it is not up yet."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dagnats.cli.common import CliError, debugging, execute, fail, setup_logging, wait_for_nats
from dagnats.cli.loader import resolve
from dagnats.cli.loop import UvloopOpt
from dagnats.cli.server import LogLevelOpt, MetricsPortOpt
from dagnats.protocol.durations import parse_duration, to_seconds
from dagnats.server.metrics import MetricsServer


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
    metrics_port: MetricsPortOpt = None,
    log_level: LogLevelOpt = "info",
    replicas: Annotated[
        int | None,
        typer.Option(
            "--replicas",
            min=1,
            max=5,
            envvar="DAGNATS_REPLICAS",
            show_envvar=True,
            help="Replicas of streams it creates [default: the Worker's own].",
        ),
    ] = None,
    wait: Annotated[
        str,
        typer.Option(
            "--wait",
            metavar="DURATION",
            help="How long to wait for NATS when it is not up yet (a worker started before "
            "`dagnats serve`); 0: fail at once.",
        ),
    ] = "30s",
    uvloop: UvloopOpt = True,
) -> None:
    """Run a Worker defined in a module (ATTR: a Worker or a function returning one).

    The current directory is importable, so `dagnats worker tasks:worker` finds ./tasks.py.
    Started before `dagnats serve`, it waits for NATS (--wait, 30 s) and says so.
    Set DAGNATS_DEBUG=1 to see the traceback of a module that fails to import.
    """
    setup_logging(log_level)
    try:
        wait_s = to_seconds(parse_duration(wait))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--wait") from None
    try:
        worker = resolve(spec, _is_worker, "a dagnats.Worker")
    except CliError as exc:
        if debugging():
            raise  # the traceback of what failed in the user's module, chained below
        fail(str(exc), exc.code)
    if nats_url is not None:
        worker.nats_url = nats_url
    if replicas is not None:
        worker.replicas = replicas

    async def main() -> None:
        await wait_for_nats(worker.nats_url, wait_s)
        if metrics_port is None:
            await worker.run()
            return
        exporter = MetricsServer(metrics_port)
        await exporter.start()
        try:
            await worker.run()
        finally:
            await exporter.stop()

    execute(main, use_uvloop=uvloop, long_running=True)
