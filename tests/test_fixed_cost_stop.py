"""The temporary server stops as soon as it is signalled (`flows.server.quick_stop_server`),
as gracefully as uvicorn's: a request in flight is answered, the app's shutdown runs; and
the command sees its exit at once (`flows.server.wait_exit`)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from flows.server import MIN_UPTIME_S, _free_port, wait_exit

REPO = Path(__file__).parents[1]
_APP = """
import asyncio, pathlib, sys
from flows.server import run_quick_stop
log = pathlib.Path(sys.argv[2])
def note(what):
    with log.open("a") as fh:
        fh.write(what + "\\n")
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                note("started")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                note("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        if scope["path"] == "/slow":
            await asyncio.sleep(0.5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
run_quick_stop(app, int(sys.argv[1]))
"""


def _serve(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port, log = _free_port(), tmp_path / "lifespan.log"
    process = subprocess.Popen([sys.executable, "-c", _APP, str(port), str(log)], cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return process, url, log
        except httpx.TransportError:
            time.sleep(0.02)
    process.kill()
    raise AssertionError("the server did not answer within 60 s")


@pytest.mark.slow
def test_a_signalled_server_stops_at_once_and_runs_the_apps_shutdown(tmp_path: Path) -> None:
    process, url, log = _serve(tmp_path)
    with httpx.Client() as client:  # a kept-alive connection, as the command's clients
        assert client.get(url).text == "ok"
        time.sleep(MIN_UPTIME_S)
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        wait_exit(process, timeout=30)
        took = time.monotonic() - start
    assert log.read_text().split() == ["started", "shutdown"]
    assert process.returncode == -signal.SIGTERM  # uvicorn ends with the signal it got
    assert took < 2  # uvicorn's own: 0.1-0.2 s of sleeps, then the same (the bench's)


@pytest.mark.slow
def test_a_request_in_flight_is_answered_before_the_server_stops(tmp_path: Path) -> None:
    process, url, log = _serve(tmp_path)
    answers: list[str] = []
    slow = threading.Thread(target=lambda: answers.append(httpx.get(f"{url}/slow").text))
    slow.start()
    time.sleep(MIN_UPTIME_S)
    process.send_signal(signal.SIGTERM)
    slow.join(30)
    wait_exit(process, timeout=30)
    assert answers == ["ok"]
    assert log.read_text().split() == ["started", "shutdown"]


@pytest.mark.slow
def test_a_server_signalled_as_it_answers_still_runs_the_apps_shutdown(
        tmp_path: Path) -> None:
    process, _, log = _serve(tmp_path)
    process.send_signal(signal.SIGTERM)
    wait_exit(process, timeout=30)
    assert log.read_text().split() == ["started", "shutdown"]


def test_wait_exit_returns_as_the_process_ends_and_times_out_otherwise() -> None:
    quick = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    wait_exit(quick, timeout=30)
    assert quick.returncode == 0
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            wait_exit(slow, timeout=0.3)
        assert 0.25 < time.monotonic() - start < 10
    finally:
        slow.kill()
        slow.wait()


def test_a_server_whose_port_is_taken_exits_with_uvicorns_startup_failure(
        tmp_path: Path) -> None:
    """Exit code 3, as `uvicorn.run`: `TemporaryServer.wait` then relaunches on another
    port."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-c", _APP, str(port), str(tmp_path / "log")],
                              cwd=REPO, capture_output=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr[-2000:]


def test_uvicorns_stop_steps_are_those_quick_stop_follows() -> None:
    """`quick_stop_server` copies uvicorn's main loop and shutdown but for their sleeps: the
    installed uvicorn's still look for the signal in 0.1 s steps and, in this order, stop
    listening, ask the connections to close, sleep, wait for them and the tasks (within
    the graceful timeout) and run the app's shutdown."""
    import inspect

    import uvicorn

    loop = inspect.getsource(uvicorn.Server.main_loop)
    assert "await asyncio.sleep(0.1)" in loop and "self.on_tick(counter)" in loop
    shutdown = inspect.getsource(uvicorn.Server.shutdown)
    steps = ["server.close()", "sock.close()", "connection.shutdown()",
             "await asyncio.sleep(0.1)", "timeout_graceful_shutdown",
             "self._wait_tasks_to_complete()", "t.cancel(", "self.lifespan.shutdown()"]
    at = [shutdown.find(step) for step in steps]
    assert -1 not in at and at == sorted(at), dict(zip(steps, at, strict=True))
    assert shutdown.count("await ") == 3  # the sleep, the waits, the app's shutdown
