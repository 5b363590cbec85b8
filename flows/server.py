"""Prefect's temporary local server, started without importing Prefect's server package.

`labelgate run` without `PREFECT_API_URL` needs Prefect's temporary server, as Prefect's
own `SubprocessASGIServer` starts it: the same app (`prefect.server.api.server:create_app`,
ephemeral: no UI, the ephemeral services), under uvicorn on 127.0.0.1, the same health
check. That class lives in `prefect.server.api.server`, whose import costs the command more
than a second before the server process can even start; this module starts the same
server from the command's first moment (`flows.entry`, before the CLI's own imports), so
that it boots on one core while the command's modules load on the other.

The server's boot is the command's critical path. Its process (`serve`) leaves out what
serves nothing to a server that lives for one command:

- registering Prefect's block types in its database, with the import of every installed
  Prefect collection (prefect-dask and distributed here: about half a second; labelgate
  uses no blocks);
- the check of the database's migrations when the SQLite database is already at the
  newest revision this Prefect ships (`database_at_head`; Alembic loads every migration
  script to find that out); a new or older database is migrated as before;
- Python's cyclic garbage collector while Prefect's server imports and builds its app
  (hundreds of thousands of long-lived objects, next to no garbage, scanned again and
  again), and the `gc.collect()` Prefect runs after building the app to give memory back
  (its "final" mode); the collector is on again, with those objects frozen, before the
  server answers;
- the runtime type checks that py-key-value (under docket, Prefect's task queue) adds to its
  package through beartype's import hook (`PY_KEY_VALUE_DISABLE_BEARTYPE`, its documented
  switch: 0.15 s of the server's imports);
- the settings' serialisation done twice for the app caches' keys, and Prefect's logging
  set up a second time with the same settings (`lean_app_build`);
- setting up, before it answers, the request handling of routes the command never calls:
  FastAPI builds an included router's routes when a request first passes it, and Prefect
  includes its routers in a fixed order with the ones a run calls spread over it (the
  version check's `admin` and `root` last). The app is built with those (`COMMAND_ROUTERS`)
  first, in Prefect's relative order, and the others after them, unchanged and built when
  a request first needs one (`command_routers_first`; no path of a router moved ahead
  matches a route of one it passes; also in `lean_app_build`).

- building the pydantic `TypeAdapter` of each of FastAPI's fields (a route's parameters,
  body and response) as Prefect's modules declare their routes: about a thousand, of
  which a run's requests use a few dozen; each is built when first used
  (`lazy_type_adapters`).

And it sets up before answering what the command's first calls would otherwise wait for:
the request handling of the command's routers (`route_once`).

It stops as soon as the command signals it (`quick_stop_server`: uvicorn's graceful steps
without its 0.1 s polling and grace sleeps), and the command sees its exit at once
(`wait_exit`).

In the command (`flows.cli`), flow run heartbeats are off: events that let a long-lived
server mark a dead run Crashed; this one stops with the run.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib.util
import os
import random
import re
import select
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

PORTS = range(8000, 9000)  # Prefect's range for its temporary server
MIN_UPTIME_S = 0.5  # a server stopped sooner waits for its services to have started
_UVICORN_EXIT_PORT_TAKEN = 3
_ROOT = str(Path(__file__).resolve().parents[1])  # where this `flows` package is
# the server's process: this module's `serve`, from the same `flows` as the command's
# (the folder above goes first on its path, in place of the current directory)
_BOOT = (f"import sys; sys.path[0] = {_ROOT!r}; from flows.server import serve; "
         "serve(int(sys.argv[1]))")
_SQLITE = "sqlite+aiosqlite:///"
_REVISION = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")
# the modules of Prefect's API routers (`prefect.server.api.<name>.router`) a run's calls
# reach: the client's version check and CSRF token, flows, flow runs and their states, task
# runs (created from events), logs, the report's artifacts, the events websocket; `root`
# last, for `route_once`
COMMAND_ROUTERS = ("flows", "flow_runs", "task_runs", "logs", "artifacts", "csrf_token",
                   "events", "admin", "root")


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
    """Prefect's server app under uvicorn on 127.0.0.1, as Prefect's `SubprocessASGIServer`
    runs it (in a process of its own: `serve`), stopped at exit by its PID."""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def launch(self) -> None:
        """Start the server process; `wait` blocks until it answers."""
        self.port = _free_port()
        env = {"PY_KEY_VALUE_DISABLE_BEARTYPE": "true", **os.environ,
               "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
               "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false"}
        self.process = subprocess.Popen([sys.executable, "-c", _BOOT, str(self.port)], env=env)
        if self not in _running:
            _running.append(self)
            atexit.register(self.stop)

    def answers(self) -> bool:
        """Whether the server answers `/api/health` now (a launched server only)."""
        import httpx

        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200
        return False

    def wait(self, timeout: float) -> None:
        """Block until `/api/health` answers 200; relaunch once on a port taken meanwhile."""
        import httpx

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
                time.sleep(0.02)
        raise RuntimeError(f"Prefect's temporary server did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """Terminate the server process (kill it after 5 s)."""
        if self in _running:
            _running.remove(self)
        if self.process is None:
            return
        self.process.terminate()
        try:
            wait_exit(self.process, timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> None:
    """`process.wait(timeout)`, woken as the process exits (Linux's pidfd) instead of in
    `Popen.wait`'s polling steps (up to 50 ms); raises `subprocess.TimeoutExpired`."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(AttributeError, OSError):  # no pidfd: Popen.wait's polling
        fd = os.pidfd_open(process.pid)
        try:
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
    process.wait(timeout=max(0.0, deadline - time.monotonic()))


_running: list[TemporaryServer] = []  # launched and not stopped yet
_launched: TemporaryServer | None = None


def stop_all() -> None:
    """Stop every server launched here and not stopped yet. For a process that ends without
    running its later exit handlers (`flows.cli` ends with `os._exit`): a server launched
    before that handler was registered would stop only after it, that is never."""
    for server in list(_running):
        server.stop()


def launch_early() -> None:
    """Launch the temporary server now, for the command to take (`take_launched`) once it
    knows that it needs one."""
    global _launched
    _launched = TemporaryServer()
    _launched.launch()


def take_launched() -> TemporaryServer | None:
    """The server `launch_early` started (once), else None."""
    global _launched
    server, _launched = _launched, None
    return server


def serve(port: int) -> None:  # pragma: no cover - runs in the server's own process
    """The temporary server's process: Prefect's app (`create_app`, ephemeral) under uvicorn
    on 127.0.0.1:`port`, without the start-up steps the module's docstring lists."""
    gc.disable()
    lazy_type_adapters()  # before Prefect's routers are imported: they build their routes
    from prefect.server.api.server import create_app
    from prefect.settings import (
        PREFECT_API_DATABASE_MIGRATE_ON_START,
        get_current_settings,
        temporary_settings,
    )

    settings = get_current_settings()
    url = settings.server.database.connection_url
    at_head = url is not None and database_at_head(url.get_secret_value())
    skip = {PREFECT_API_DATABASE_MIGRATE_ON_START: False}
    with temporary_settings(updates=skip) if at_head else contextlib.nullcontext():
        with lean_app_build():
            app = create_app()
        with contextlib.suppress(Exception):  # an optimisation: else the first call does it
            route_once(app)
        gc.enable()
        gc.freeze()  # what was built so far lives as long as the server
        run_quick_stop(app, port)


def lazy_type_adapters() -> None:
    """FastAPI's fields (`fastapi._compat.v2.ModelField`: one per parameter, body and
    response model of each route) build their pydantic `TypeAdapter` when first used (to
    validate or serialise a request, or for the OpenAPI schema) instead of when the field is
    made: FastAPI makes them as Prefect's modules declare their routes, about a thousand
    for Prefect's 188 routes, of which a run's requests use a few dozen. The adapter is the
    one the field would have built (its `__post_init__`, called on first use), kept on the
    field as before (tests/test_fixed_cost_server.py checks the installed FastAPI)."""
    try:  # a FastAPI without this private class: left as it is (the adapters built eagerly)
        from fastapi._compat import v2

        field_class: Any = v2.ModelField
        post_init = field_class.__post_init__
    except (ImportError, AttributeError):
        return
    if isinstance(field_class.__dict__.get("_type_adapter"), _BuiltOnFirstUse):
        return
    field_class._type_adapter = _BuiltOnFirstUse(post_init)
    field_class.__post_init__ = _no_adapter_yet


def _no_adapter_yet(field: Any) -> None:
    """`ModelField.__post_init__` under `lazy_type_adapters`: nothing built yet."""


class _BuiltOnFirstUse:
    """`ModelField._type_adapter` under `lazy_type_adapters`: a non-data descriptor, so the
    field's own attribute, once FastAPI's `__post_init__` has set it, is read directly."""

    def __init__(self, post_init: Any) -> None:
        self.post_init = post_init

    def __get__(self, field: Any, owner: Any = None) -> Any:
        if field is None:
            return self
        self.post_init(field)  # sets field._type_adapter
        return field.__dict__["_type_adapter"]


def run_quick_stop(app: Any, port: int) -> None:  # pragma: no cover - the server's process
    """`uvicorn.run(app, ...)` with Prefect's settings for its temporary server, except
    that the server stops as soon as it is signalled (`QuickStop`); exit code 3 when it
    could not start (the port was taken meanwhile), as `uvicorn.run`."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                            lifespan="on")
    server = quick_stop_server(config)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a quiet stop, as uvicorn.run's
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def quick_stop_server(config: Any) -> Any:
    """A `uvicorn.Server` for `config` that stops as soon as it is signalled. uvicorn's
    server looks for the signal every 0.1 s, then, having asked its connections to close,
    waits 0.1 s before it waits for them (in 0.1 s steps): at the command's end its client
    has no request left, so its connections close at once. This one wakes at the signal
    and looks for its connections every 5 ms; then, as uvicorn's, waits for its background
    tasks and runs the app's shutdown (Prefect's services stop). The steps are uvicorn's
    (tests/test_fixed_cost_stop.py checks that the installed uvicorn's are those this
    copies)."""
    import asyncio

    import uvicorn

    class QuickStop(uvicorn.Server):
        async def main_loop(self) -> None:
            self.signalled = asyncio.Event()
            loop = asyncio.get_running_loop()
            self.wake = lambda: loop.call_soon_threadsafe(self.signalled.set)
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 1) % 864000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.signalled.wait(), 0.1)
                should_exit = await self.on_tick(counter)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            self.answering_since = time.monotonic()

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            wake = getattr(self, "wake", None)
            if wake is not None:
                wake()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # the app's services have started (they start as tasks while it answers; uvicorn's
            # grace sleep gave them 0.1-0.2 s in a server stopped as soon as it answered)
            since = getattr(self, "answering_since", time.monotonic())
            await asyncio.sleep(max(0.0, since + MIN_UPTIME_S - time.monotonic()))
            for server in self.servers:  # uvicorn's steps, but for its 0.1 s grace sleep
                server.close()
            for sock in sockets or []:
                sock.close()
            for connection in list(self.server_state.connections):
                connection.shutdown()
            try:
                async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                    while self.server_state.connections and not self.force_exit:
                        await asyncio.sleep(0.005)  # idle ones close at once
                    await self._wait_tasks_to_complete()
            except TimeoutError:
                for task in self.server_state.tasks:
                    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
            if not self.force_exit:
                await self.lifespan.shutdown()

    return QuickStop(config)


def command_routers_first(routers: Sequence[Any]) -> tuple[Any, ...]:
    """Prefect's API `routers` (`prefect.server.api.server.API_ROUTERS`) with those of
    `COMMAND_ROUTERS` first; each group in its order in `routers`."""
    from prefect.server import api

    first = [getattr(api, name).router for name in COMMAND_ROUTERS]
    ahead = [r for r in routers if any(r is f for f in first)]
    return (*ahead, *(r for r in routers if not any(r is f for f in first)))


@contextlib.contextmanager
def lean_app_build() -> Iterator[None]:
    """While Prefect's `create_app` runs inside (tests/test_fixed_cost_server.py checks each
    of these on the installed Prefect):

    - its API routers are in the order `command_routers_first` gives (Prefect's
      `create_api_app` includes those of its module's `API_ROUTERS`);
    - the settings' `hash_key` (their serialisation, for the app caches' keys: 0.07 s) is
      computed once per settings object, not once by `create_app` and again by
      `create_api_app` for the same settings;
    - Prefect's `setup_logging` does nothing when this process has set up its logging
      already (`import prefect` does; `create_app` calls it again, 0.08 s, with the same
      settings but the database's migration flag, which its logging template does not
      use)."""
    from prefect.logging import configuration
    from prefect.server.api import server as prefect_server
    from prefect.settings import Settings

    routers, hash_key = prefect_server.API_ROUTERS, Settings.hash_key
    setup_logging = configuration.setup_logging
    keys: dict[int, tuple[Settings, str]] = {}

    def hash_once(self: Settings) -> str:
        if id(self) not in keys:  # the settings object is kept: its id is not reused
            keys[id(self)] = (self, hash_key(self))
        return keys[id(self)][1]

    def logging_once(incremental: bool | None = None) -> dict[str, Any]:
        if configuration.PROCESS_LOGGING_CONFIG:
            return configuration.PROCESS_LOGGING_CONFIG
        return setup_logging(incremental)

    prefect_server.API_ROUTERS = command_routers_first(routers)
    Settings.hash_key = hash_once  # type: ignore[method-assign]
    configuration.setup_logging = logging_once
    try:
        yield
    finally:
        prefect_server.API_ROUTERS = routers
        Settings.hash_key = hash_key  # type: ignore[method-assign]
        configuration.setup_logging = setup_logging


def route_once(app: Any, path: str = "/api/hello") -> int:
    """Send `app` one GET `path`, in this process; returns its status. FastAPI (0.137 and
    later) builds each included router's request handling (the pydantic adapters of its
    routes' parameters) when a request first passes it: about 0.3 s for Prefect's 188
    routes, which the command's first call after the health check would otherwise wait for.
    `/api/hello` is the `root` router's route that needs nothing (no database): the request
    passes every router before it, with `lean_app_build` the command's. A path that
    no route matches passes them all."""
    import asyncio

    import httpx

    async def once() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return (await c.get(path)).status_code

    return asyncio.run(once())


def database_at_head(connection_url: str, migrations: Path | None = None) -> bool:
    """Whether `connection_url` names an existing SQLite file whose Alembic revision is the
    newest of Prefect's SQLite migrations (`migrations`: that folder; by default the
    installed Prefect's). Any doubt (another database, no such file, several heads, an
    unreadable file) is False: the server then migrates as usual."""
    if not connection_url.startswith(_SQLITE) or "?" in connection_url:
        return False
    path = Path(connection_url.removeprefix(_SQLITE))
    if not path.is_file():
        return False
    head = migration_head(migrations or _prefect_dir() / "server/database/_migrations"
                          "/versions/sqlite")
    if head is None:
        return False
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
            rows = con.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return False
    return rows == [(head,)]


def migration_head(folder: Path) -> str | None:
    """The one revision of the Alembic scripts in `folder` that no script revises, else
    None (no scripts, several heads or a script without a revision)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in folder.glob("*.py"):
        text = script.read_text(encoding="utf-8")
        found = _REVISION.search(text)
        if found is None:
            if script.name != "__init__.py":
                return None
            continue
        revisions.add(found.group(1))
        down = _DOWN_REVISION.search(text)
        if down is not None:
            revised.update(_QUOTED.findall(down.group(1)))
    heads = revisions - revised
    return next(iter(heads)) if len(heads) == 1 else None
