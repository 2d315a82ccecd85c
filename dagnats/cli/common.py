"""What every command shares: options, connecting, running a coroutine, errors, arguments.

Errors reach the user as one line on stderr (``error: ...``) and an exit code: 1 for a
dagnats or connection error, 2 for a usage error, 130 for Ctrl-C. Set ``DAGNATS_DEBUG=1`` to
get the full traceback instead (for reporting a bug in dagnats itself).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any, NoReturn

import click
import typer

from dagnats._nats.closing import close_within
from dagnats._nats.connection import CONNECT_HINT, NatsAuth, set_reconnect_attempts
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.types import NatsClient
from dagnats.cli import loop
from dagnats.client import Client
from dagnats.client.client import DEFAULT_URL
from dagnats.errors import DagnatsError, NatsUnavailableError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

CONNECT_TIMEOUT_S = 3.0
API_TIMEOUT_S = 10.0
# Fail fast when NATS is not there at all; once connected, ride out a restart of the server.
FIRST_CONNECT_ATTEMPTS = 1
RECONNECT_ATTEMPTS = 60
RECONNECT_WAIT_S = 0.5

NatsUrlOpt = Annotated[
    str,
    typer.Option(
        "--nats-url",
        envvar="DAGNATS_NATS_URL",
        help="NATS server to talk to.",
        show_envvar=True,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]
DEFAULT_NATS_URL = DEFAULT_URL


class CliError(Exception):
    """An error to show the user as one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def one_line(message: str) -> str:
    parts = [p.strip() for p in message.strip().splitlines() if p.strip()]
    return "; ".join(parts)


def describe(exc: BaseException) -> str:
    """A short text for an exception whose ``str()`` may be empty."""
    text = str(exc).strip()
    if isinstance(exc, DagnatsError | CliError):
        return text or type(exc).__name__
    name = type(exc).__name__
    return f"{name}: {text}" if text and not text.startswith("nats:") else text or name


def json_requested() -> bool:
    """Whether the running command was given ``--json`` (every command names it so)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.params.get("json_out"):
        return True
    return "--json" in sys.argv[1:]


def error_json(kind: str, message: str, code: int) -> str:
    """A failure as ``--json`` users read it: one JSON document (on stderr)."""
    body = {"error": {"kind": kind, "message": one_line(message), "exit_status": code}}
    return json.dumps(body)


def fail(message: str, code: int = EXIT_ERROR, kind: str = "Error") -> NoReturn:
    if json_requested():
        typer.echo(error_json(kind, message, code), err=True)
    else:
        typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)


def debugging() -> bool:
    """``DAGNATS_DEBUG=1``: tracebacks instead of one-line errors."""
    return bool(os.environ.get("DAGNATS_DEBUG"))


def execute(
    main: Callable[[], Coroutine[Any, Any, int | None]],
    *,
    use_uvloop: bool = False,
    long_running: bool = False,
) -> None:
    """Run ``main()`` in a fresh event loop (uvloop's with ``use_uvloop``, when installed)
    and turn its outcome into an exit status (``long_running``: see
    ``loop.prepare_long_running``)."""
    if debugging():
        code = loop.run(main(), use_uvloop=use_uvloop, long_running=long_running)
        if code:
            raise typer.Exit(code)
        return
    try:
        code = loop.run(main(), use_uvloop=use_uvloop, long_running=long_running)
    except (typer.Exit, BrokenPipeError):
        raise  # click ends a command whose reader went away (`| head`) quietly, status 1
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED, "Interrupted")
    except CliError as exc:
        fail(str(exc), exc.code, _kind(exc))
    except DagnatsError as exc:
        fail(describe(exc), kind=type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
        fail(describe(exc), kind=type(exc).__name__)
    if code:
        raise typer.Exit(code)


def _kind(exc: CliError) -> str:
    cause = exc.__cause__
    return type(cause).__name__ if isinstance(cause, DagnatsError) else "CliError"


async def open_nats(url: str, auth: NatsAuth | None = None) -> NatsClient:
    """Connect once, quickly, with a clear error; then reconnect patiently if it drops.

    Credentials: ``auth``, else the ``DAGNATS_NATS_*`` environment variables."""
    try:
        nc = await connect_nats(
            url,
            connect_timeout_s=CONNECT_TIMEOUT_S,
            max_reconnect_attempts=FIRST_CONNECT_ATTEMPTS,
            reconnect_time_wait_s=RECONNECT_WAIT_S,
            auth=auth,
        )
    except NatsUnavailableError as exc:
        raise CliError(str(exc)) from exc
    # After the first success, be patient.
    set_reconnect_attempts(nc, RECONNECT_ATTEMPTS)
    return nc


WAIT_STEP_S = 0.5


async def wait_for_nats(url: str, wait_s: float, auth: NatsAuth | None = None) -> None:
    """Return once NATS answers at ``url``, trying for up to ``wait_s`` seconds.

    A worker started before ``dagnats serve`` waits for it, saying so once on stderr; a
    server that answers and refuses (credentials, TLS) is an error at once, and so is
    nothing answering after ``wait_s`` (0: try once)."""
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            nc = await open_nats(url, auth)
        except CliError as exc:
            left = deadline - time.monotonic()
            if left <= 0 or CONNECT_HINT not in str(exc):
                waited = f" (waited {wait_s:g}s)" if said else ""
                raise CliError(f"{exc}{waited}", exc.code) from exc.__cause__
            if not said:
                typer.echo(
                    f"waiting up to {wait_s:g}s for NATS at {url}: start it with `dagnats "
                    "serve`, or point --nats-url / DAGNATS_NATS_URL at a running server",
                    err=True,
                )
                said = True
            await asyncio.sleep(min(WAIT_STEP_S, left))
            continue
        await nc.close()
        if said:
            typer.echo(f"NATS is up at {url}", err=True)
        return


@asynccontextmanager
async def connect(url: str, *, timeout_s: float = API_TIMEOUT_S) -> AsyncIterator[Client]:
    """A ``Client`` on its own connection, closed on the way out."""
    nc = await open_nats(url)
    try:
        yield Client(nc, timeout_s=timeout_s)
    finally:
        with suppress(Exception):
            await close_within(nc)


MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024  # a value larger than this is no command-line input

InputFileOpt = Annotated[
    str | None,
    typer.Option(
        "--input-file",
        metavar="FILE",
        help="Read the value (JSON) from FILE, or from stdin with '-', instead of the argument.",
        show_default=False,
    ),
]


def parse_value(text: str | None, what: str = "INPUT") -> Any:
    """A command-line value, which must be JSON (``'"World"'``, ``'{"a":1}'``, ``42``).

    Text that is not JSON is refused, naming the JSON problem, rather than taken as a
    string: ``World`` and ``{a: 1}`` would otherwise both start a run with a string nobody
    meant. ``None`` stays ``None``.
    """
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise typer.BadParameter(
            f"{shown!r} is not valid JSON: {exc.msg} (line {exc.lineno}, column "
            f"{exc.colno}); write a string as JSON too, e.g. '\"World\"'",
            param_hint=what,
        ) from None


def read_value(text: str | None, input_file: str | None, what: str = "INPUT") -> Any:
    """The value from the argument or from ``--input-file FILE|-`` (not both), as JSON."""
    if input_file is None:
        return parse_value(text, what)
    if text is not None:
        raise typer.BadParameter(f"give {what} or --input-file, not both", param_hint=what)
    source = "stdin" if input_file == "-" else input_file
    try:
        if input_file == "-":
            body = sys.stdin.read(MAX_INPUT_FILE_BYTES + 1)
        else:
            with open(input_file, encoding="utf-8") as f:
                body = f.read(MAX_INPUT_FILE_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(
            f"cannot read {source}: {describe(exc)}", param_hint="--input-file"
        ) from exc
    if len(body) > MAX_INPUT_FILE_BYTES:
        raise typer.BadParameter(f"{source} is larger than 64 MiB", param_hint="--input-file")
    return parse_value(body, f"{what} from {source}")


class _QuietNatsErrors(logging.Filter):
    """nats-py logs connection errors with a traceback; keep only the message. It also warns
    "Server may ignore filters if version is < 2.10." on every filtered KV key listing, even
    on newer servers (dagnats needs >= 2.12, so it is always a false alarm): drop that."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "nats.js.kv" and str(record.msg).startswith("Server may ignore filters"):
            return False
        if record.name.startswith("nats") and record.exc_info:
            exc = record.exc_info[1]
            if exc is not None:
                record.msg = f"{record.getMessage()}: {describe(exc)}"
                record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


LOG_LEVELS = ("debug", "info", "warning", "error")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now, not what it was when the handler was made
    (a command run in-process, as tests do, outlives the stream it started with)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(level: str) -> None:
    """The CLI's one log handler (library code installs none)."""
    name = level.lower()
    if name not in LOG_LEVELS:
        raise typer.BadParameter(
            f"expected one of {', '.join(LOG_LEVELS)}", param_hint="--log-level"
        )
    handler = _StderrHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    if name != "debug":
        handler.addFilter(_QuietNatsErrors())
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _StderrHandler):  # ours from an earlier command; others stay
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(name.upper())
