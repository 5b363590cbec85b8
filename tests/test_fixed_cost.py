"""The fixed cost of `labelgate run` (issue 22): which commands launch Prefect's temporary
server at once (`flows.entry`), when that server may skip its migrations
(`flows.server`), and what the command loads while the server boots (`flows.warm`): only
what the flow of the spec imports anyway."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from flows.entry import needs_server
from flows.server import _prefect_dir, database_at_head, migration_head
from flows.warm import COMMAND, FIT, FLOW, RUNTIME, first_fit, modules_for
from labelgate.spec import load_spec
from tests.conftest import SpecFactory

REPO = Path(__file__).parents[1]
SQLITE_MIGRATIONS = _prefect_dir() / "server/database/_migrations/versions/sqlite"


def test_the_console_entry_is_flows_entry() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["labelgate"] == "flows.entry:main"


@pytest.mark.parametrize(("argv", "env", "expected"), [
    (["run", "spec.yaml"], {}, True),
    (["run", "--store", "s", "spec.yaml"], {}, True),
    (["run", "spec.yaml"], {"PREFECT_API_URL": "http://127.0.0.1:4200/api"}, False),
    (["run", "spec.yaml"], {"PREFECT_API_URL": ""}, True),
    (["run", "--help"], {}, False),
    (["run", "spec.yaml", "--dask", "tcp://h:8786"], {}, False),
    (["run", "spec.yaml", "--dask=tcp://h:8786"], {}, False),
    (["check", "spec.yaml"], {}, False),
    (["gate", "run"], {}, False),
    ([], {}, False),
])
def test_only_a_run_without_an_api_launches_the_server_early(
        argv: list[str], env: dict[str, str], expected: bool) -> None:
    assert needs_server(argv, env) is expected


def _script(folder: Path, name: str, revision: str | None, down: str) -> None:
    lines = ['"""A migration."""', "from alembic import op", ""]
    if revision is not None:
        lines.append(f'revision = "{revision}"')
    lines += [f"down_revision = {down}", "branch_labels = None", ""]
    (folder / f"{name}.py").write_text("\n".join(lines))


def test_migration_head_is_the_revision_nothing_revises(tmp_path: Path) -> None:
    _script(tmp_path, "1_initial", "aaa", "None")
    _script(tmp_path, "2_second", "bbb", '"aaa"')
    _script(tmp_path, "3_third", "ccc", "'bbb'")
    (tmp_path / "__init__.py").write_text("")
    assert migration_head(tmp_path) == "ccc"
    _script(tmp_path, "4_branch", "ddd", '"bbb"')  # two heads: no answer
    assert migration_head(tmp_path) is None
    _script(tmp_path, "5_merge", "eee", '("ccc", "ddd")')  # merged again
    assert migration_head(tmp_path) == "eee"
    _script(tmp_path, "6_odd", None, '"eee"')  # a script without a revision: no answer
    assert migration_head(tmp_path) is None
    assert migration_head(tmp_path / "missing") is None


def test_prefects_own_sqlite_migrations_have_one_head() -> None:
    head = migration_head(SQLITE_MIGRATIONS)
    assert head is not None
    assert any(head in p.name for p in SQLITE_MIGRATIONS.glob("*.py"))


def _database(path: Path, revision: str | None) -> str:
    with sqlite3.connect(path) as con:
        if revision is not None:
            con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            con.execute("INSERT INTO alembic_version VALUES (?)", [revision])
    return f"sqlite+aiosqlite:///{path}"


def test_only_a_database_at_the_head_skips_its_migrations(tmp_path: Path) -> None:
    _script(tmp_path, "1_initial", "aaa", "None")
    _script(tmp_path, "2_second", "bbb", '"aaa"')
    assert database_at_head(_database(tmp_path / "head.db", "bbb"), tmp_path)
    assert not database_at_head(_database(tmp_path / "older.db", "aaa"), tmp_path)
    assert not database_at_head(_database(tmp_path / "empty.db", None), tmp_path)
    assert not database_at_head(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}", tmp_path)
    assert not database_at_head(f"sqlite+aiosqlite:///{tmp_path / 'head.db'}?mode=ro",
                                tmp_path)
    assert not database_at_head("postgresql+asyncpg://u:p@db/prefect", tmp_path)
    (tmp_path / "junk.db").write_text("not a database")
    assert not database_at_head(f"sqlite+aiosqlite:///{tmp_path / 'junk.db'}", tmp_path)


def test_warm_names_the_tasks_and_libraries_of_the_stages_a_spec_runs(
        make_spec: SpecFactory) -> None:
    bare = modules_for(load_spec(make_spec()))
    assert bare[:len(FLOW)] == list(FLOW)
    assert "tasks.report" in bare and "labelgate.report.plots" in bare
    assert "tasks.dedup" not in bare and "scipy.sparse.csgraph" not in bare
    assert "tasks.label_issues" not in bare
    full = modules_for(load_spec(make_spec(label_issues={"folds": 2}, dedup={}, splits={})))
    assert {"tasks.dedup", "tasks.splits", "tasks.label_issues", "scipy.sparse.csgraph"} <= \
        set(full)
    assert len(full) == len(set(full))
    # a fit's model libraries are not warmed without a store to look in: a rerun on
    # unchanged data reuses its flags
    assert not any(m.startswith(("sklearn", "cleanlab")) for m in full)


def test_warm_names_the_fit_libraries_only_for_a_datasets_first_run(
        make_spec: SpecFactory, tmp_path: Path) -> None:
    spec = load_spec(make_spec(label_issues={"folds": 2}))
    store = tmp_path / "store"
    assert first_fit(spec, store)
    assert set(FIT) <= set(modules_for(spec, store))
    (store / "reports" / spec.name).mkdir(parents=True)  # a run of the dataset exists
    assert not first_fit(spec, store)
    assert not set(FIT) & set(modules_for(spec, store))
    assert not first_fit(spec, None)  # a remote store: not looked at
    bare = load_spec(make_spec())  # no label issues: nothing to fit
    assert not first_fit(bare, tmp_path / "other")


def test_a_fit_imports_every_fit_library_warm_names() -> None:
    """In a process of its own: the label-issue stage's training run on a small text frame
    imports each module of `FIT` (so warming them is no guess)."""
    code = """
import json, sys
import polars as pl
from labelgate.stages.label_issues.detect import find_label_issues
words = ["good great fine", "bad awful poor", "plain usual normal"]
rows = pl.DataFrame({"id": [str(i) for i in range(60)],
                     "text": [f"{words[i % 3]} item {i}" for i in range(60)],
                     "label": [str(i % 3) for i in range(60)]})
find_label_issues(rows, id_column="id", label_column="label", text_columns=["text"],
                  folds=3)
print(json.dumps(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert set(FIT) <= loaded


def test_warm_loads_nothing_the_spec_does_not_use(make_spec: SpecFactory) -> None:
    """In a process of its own: warming a spec without label issues or dedup imports
    neither the model libraries nor scipy's graph algorithms."""
    spec = make_spec()
    code = ("import json, sys; from flows.warm import warm; from labelgate.spec import "
            "load_spec; warm(load_spec(sys.argv[1])); print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code, str(spec)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"prefect.flow_engine", "tasks.report", "matplotlib.backends.backend_svg"} <= loaded
    assert not {"sklearn", "cleanlab", "scipy.sparse.csgraph", "tasks.dedup"} & loaded


@pytest.mark.slow
def test_a_flow_run_imports_everything_warm_names(tmp_path: Path) -> None:
    """The warm-up's list is no guess: a flow run that was not warmed (its own process, a
    temporary server) imports every module `modules_for` names for its spec."""
    from tests.conftest import item_rows, spec_dict, write_csv

    write_csv(tmp_path / "items" / "part1.csv", item_rows(120))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(dedup={}, splits={}), sort_keys=False))
    assert set(RUNTIME) <= {"dedup", "splits", "report"}  # the stages this spec runs
    code = """
import json, sys
from flows.server import TemporaryServer
server = TemporaryServer()
server.launch()
server.wait(120)
from prefect.settings import PREFECT_API_URL, temporary_settings
with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
    from flows.pipeline import quality_pipeline
    state = quality_pipeline(sys.argv[1], return_state=True)
server.stop()
print(json.dumps({"state": state.type.value, "modules": sorted(sys.modules)}))
"""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-c", code, str(spec)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["state"] == "COMPLETED"
    missing = set(modules_for(load_spec(spec))) - set(COMMAND) - set(result["modules"])
    assert not missing, f"warmed but never imported by the flow: {sorted(missing)}"


def test_route_once_sends_one_request_to_hello() -> None:
    from fastapi import APIRouter, FastAPI

    from flows.server import route_once

    seen: list[str] = []
    router = APIRouter(prefix="/api/things")

    @router.get("/{thing_id}")
    def read(thing_id: int) -> int:
        seen.append("read")
        return thing_id

    hello = APIRouter(prefix="/api")

    @hello.get("/hello")
    def say() -> str:
        seen.append("hello")
        return "hi"

    app = FastAPI()
    app.include_router(router)
    app.include_router(hello)
    assert route_once(app, "/api/no-such-route") == 404
    assert not seen  # no route ran
    assert route_once(app) == 200
    assert seen == ["hello"]


def test_the_collector_is_on_again_once_the_flows_modules_are_loaded(
        make_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import flows.cli as cli
    import flows.warm

    monkeypatch.setattr(flows.warm, "warm", lambda spec, store=None: [])
    spec = load_spec(make_spec())
    frozen = gc.get_freeze_count()
    cli._load_stages(spec)  # collector on (a test, CliRunner): left as it is, nothing frozen
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()  # as `flows.entry` leaves it for `run`
    try:
        cli._load_stages(spec)
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen
    finally:
        gc.enable()
        gc.unfreeze()
