"""The temporary server's app (`flows.server`): Prefect's API routers that a run calls are
included first, so that the request `route_once` sends before the server answers sets up
those and not the others; no path is served by another route than in Prefect's order."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flows.server import COMMAND_ROUTERS, command_routers_first

REPO = Path(__file__).parents[1]
_PARAM = re.compile(r"\{(\w+)\}")
_VALUES = ("x", "00000000-0000-0000-0000-000000000000", "1")  # str, uuid, int
_API = "prefect.server.api."


def _prefect_routers() -> tuple[Any, ...]:
    from prefect.server.api.server import API_ROUTERS

    return tuple(API_ROUTERS)


def _name(router: Any) -> str:
    """The name of the module under prefect.server.api whose `router` is `router`."""
    for name, module in list(sys.modules.items()):
        if name.startswith(_API) and getattr(module, "router", None) is router:
            return name.removeprefix(_API)
    raise AssertionError(f"no module of prefect.server.api has router {router!r}")


def test_the_command_routers_go_first_each_group_in_prefects_order() -> None:
    routers = _prefect_routers()
    ordered = command_routers_first(routers)
    assert sorted(map(id, ordered)) == sorted(map(id, routers))  # the same routers, once each
    names = [_name(r) for r in ordered]
    prefect_names = [_name(r) for r in routers]
    ahead = names[:len(COMMAND_ROUTERS)]
    assert set(ahead) == set(COMMAND_ROUTERS)
    assert ahead == [n for n in prefect_names if n in COMMAND_ROUTERS]
    assert names[len(COMMAND_ROUTERS):] == [n for n in prefect_names if n not in COMMAND_ROUTERS]
    assert ahead[-1] == "root"  # route_once's /hello passes the command's routers


def _path(route: Any) -> str:
    """One path that `route` serves: each parameter a value its convertor takes."""
    def value(found: re.Match[str]) -> str:
        regex = route.param_convertors[found.group(1)].regex
        return next(v for v in _VALUES if re.fullmatch(regex, v))

    path: str = _PARAM.sub(value, route.path_format)
    assert route.path_regex.match(path), (route.path_format, path)
    return path


def _routes(router: Any) -> list[tuple[re.Pattern[str], str, set[str] | None]]:
    """Each route's path pattern, one path it serves, and its methods."""
    return [(route.path_regex, _path(route), getattr(route, "methods", None))
            for route in router.routes]


def test_no_router_moved_ahead_serves_a_path_of_one_it_passes() -> None:
    routers = _prefect_routers()
    moved = [i for i, r in enumerate(routers) if _name(r) in COMMAND_ROUTERS]
    clashes = []
    for i in moved:
        passed = [j for j in range(i) if j not in moved]  # now after routers[i]
        for j in passed:
            for a, b in ((routers[i], routers[j]), (routers[j], routers[i])):
                for pattern, _, methods in _routes(a):
                    for _, path, others in _routes(b):
                        shared = methods is None or others is None or methods & others
                        if shared and pattern.match(path):
                            clashes.append((_name(a), pattern.pattern, _name(b), path))
    assert not clashes


_APP_BUILD = """
import json
from prefect.logging import configuration
from prefect.server.api.server import create_app
from prefect.settings import Settings
from flows.server import lean_app_build, route_once
calls = {"hash_key": 0, "setup_logging": 0}
hash_key, setup_logging = Settings.hash_key, configuration.setup_logging
def counted_hash(self):
    calls["hash_key"] += 1
    return hash_key(self)
def counted_logging(incremental=None):
    calls["setup_logging"] += 1
    return setup_logging(incremental)
Settings.hash_key, configuration.setup_logging = counted_hash, counted_logging
out = {}
for name in ("prefect", "lean"):
    calls.update(hash_key=0, setup_logging=0)
    if name == "lean":
        with lean_app_build():
            app = create_app(ephemeral=True, ignore_cache=True)
        out["hello"] = route_once(app)
    else:
        app = create_app(ephemeral=True, ignore_cache=True)
    out[name] = {"calls": dict(calls), "paths": list(app.api_app.openapi()["paths"])}
print(json.dumps(out))
"""


def _app_build(home: Path) -> dict[str, Any]:
    """Prefect's app built as Prefect builds it, then inside `lean_app_build`, in a new
    process: the calls of the settings' hash and of the logging set-up, the API's paths in
    order, and the status of `route_once`."""
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED":
           "false", "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-c", _APP_BUILD], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_lean_app_build_serves_the_same_api_with_less_work(tmp_path: Path) -> None:
    result = _app_build(tmp_path)
    prefect, lean = result["prefect"], result["lean"]
    assert sorted(prefect["paths"]) == sorted(lean["paths"])  # the same API
    # Prefect's order, then the command's routers first
    assert prefect["paths"].index("/hello") > prefect["paths"].index("/deployments/")
    assert lean["paths"].index("/hello") < lean["paths"].index("/deployments/")
    assert lean["paths"].index("/admin/version") < lean["paths"].index("/deployments/")
    assert lean["paths"][2] == "/flows/"  # after the app's own /health and /version
    assert result["hello"] == 200
    # Prefect hashes the same settings twice and sets its logging up again; lean: once, not
    assert prefect["calls"] == {"hash_key": 2, "setup_logging": 1}
    assert lean["calls"] == {"hash_key": 1, "setup_logging": 0}


def test_prefects_logging_template_uses_no_database_setting() -> None:
    from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH

    template = DEFAULT_LOGGING_SETTINGS_PATH.read_text(encoding="utf-8")
    assert "$" in template  # it does use settings
    assert "DATABASE" not in template.upper()


_LAZY = """
import gc, json, sys
import httpx, asyncio
from flows.server import lazy_type_adapters
if sys.argv[1] == "lazy":
    lazy_type_adapters()
from fastapi._compat.v2 import ModelField
from prefect.server.api.server import create_app
def built():
    return sum(1 for o in gc.get_objects()
               if isinstance(o, ModelField) and "_type_adapter" in o.__dict__)
at_import = built()
app = create_app(ephemeral=True, ignore_cache=True)
async def invalid():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        bad = await c.post("/api/flows/", json={"name": {"not": "a name"}})
        hello = await c.get("/api/hello")
        return [bad.status_code, bad.json(), hello.status_code, hello.json()]
answers = asyncio.run(invalid())
after_requests = built()
print(json.dumps({"openapi": app.api_app.openapi(), "answers": answers,
                  "at_import": at_import, "after_requests": after_requests}))
"""


def _lazy_build(home: Path, mode: str) -> dict[str, Any]:
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED":
           "false", "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-c", _LAZY, mode], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_lazy_type_adapters_serve_the_same_api_building_only_what_is_used(
        tmp_path: Path) -> None:
    """FastAPI's fields build their TypeAdapters when first used: none as Prefect's routes
    are declared, a few for two requests; the same OpenAPI schema (which uses them all)
    and the same answers, a validation error included."""
    eager, lazy = _lazy_build(tmp_path, "eager"), _lazy_build(tmp_path, "lazy")
    assert json.dumps(lazy["openapi"], sort_keys=True) == json.dumps(eager["openapi"],
                                                                     sort_keys=True)
    assert lazy["answers"] == eager["answers"]
    assert lazy["answers"][0] == 422 and lazy["answers"][2] == 200
    assert eager["at_import"] > 500  # FastAPI builds them as routes are declared
    assert lazy["at_import"] == 0
    assert 0 < lazy["after_requests"] < 20


def test_fastapis_field_builds_its_adapter_in_post_init_only() -> None:
    """What `lazy_type_adapters` defers: the installed FastAPI's `ModelField` sets
    `_type_adapter` in `__post_init__` and nowhere else in FastAPI (where it is read)."""
    import inspect

    import fastapi
    from fastapi._compat import v2

    assert "self._type_adapter" in inspect.getsource(v2.ModelField.__post_init__)
    sets = [path for path in Path(fastapi.__file__).parent.rglob("*.py")
            if re.search(r"_type_adapter\s*(:[^=]*)?=", path.read_text(encoding="utf-8"))]
    assert sets == [Path(v2.__file__)]


def test_lazy_type_adapters_leaves_a_fastapi_without_the_private_class_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A FastAPI release that moved `fastapi._compat.v2.ModelField` (a private class): the
    server builds its adapters as FastAPI does, instead of failing to start."""
    from fastapi._compat import v2

    from flows.server import lazy_type_adapters

    monkeypatch.delattr(v2, "ModelField")
    lazy_type_adapters()  # no AttributeError: nothing to patch
    assert not hasattr(v2, "ModelField")
