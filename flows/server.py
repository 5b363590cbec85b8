"""Prefect's temporary local server, started without importing Prefect's server package.

`labelgate run` without `PREFECT_API_URL` needs Prefect's temporary server, as Prefect's
own `SubprocessASGIServer` starts it: the same uvicorn command, app factory, environment
and health check. That class lives in `prefect.server.api.server`, whose import costs the
command more than a second before the server process can even start; this module starts
the same process from the command's first moment, so the server boots on one core while
the stages' modules load on the other.

Two of Prefect's start-up steps are left out, as they serve nothing a server that lives
for one command: registering Prefect's block types in its database (with the import of
every installed Prefect collection, prefect-dask and distributed here: about half a second
of the server's boot; labelgate uses no blocks), and, in the command (`flows.cli`), flow
run heartbeats (events that let a long-lived server mark a dead run Crashed; this one
stops with the run).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PORTS = range(8000, 9000)  # Prefect's range for its temporary server
_UVICORN_EXIT_PORT_TAKEN = 3


def _free_port() -> int:
    """A loopback port nothing listens on (random, as Prefect picks its own)."""
    for _ in range(20):
        port = random.choice(PORTS)
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for Prefect's temporary server in 8000-8999")


def _prefect_dir() -> Path:
    """Where the prefect package is, without importing it."""
    found = importlib.util.find_spec("prefect")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("the prefect package is not installed")
    return Path(next(iter(found.submodule_search_locations)))


class TemporaryServer:
    """Prefect's server app (`prefect.server.api.server:create_app`) under uvicorn on
    127.0.0.1, as Prefect's `SubprocessASGIServer` runs it, stopped at exit by its PID."""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def launch(self) -> None:
        """Start the server process; `wait` blocks until it answers."""
        self.port = _free_port()
        env = {**os.environ, "PREFECT_UI_ENABLED": "0",
               "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
               "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
               "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(_prefect_dir().parent),
             "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
            env=env,
        )
        atexit.register(self.stop)

    def wait(self, timeout: float) -> None:
        """Block until `/api/health` answers 200; relaunch once on a port taken meanwhile."""
        deadline = time.monotonic() + timeout
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                code = self.process.poll()
                if code == _UVICORN_EXIT_PORT_TAKEN:
                    self.launch()
                    continue
                if code is not None:
                    raise RuntimeError(f"Prefect's temporary server exited with code {code}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                time.sleep(0.05)
        raise RuntimeError(f"Prefect's temporary server did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """Terminate the server process (kill it after 5 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
