"""What `labelgate run` shows on an expected error: the `error:` line, no Python traceback.

Prefect logs a failed task's or flow's exception with its traceback on the console; the CLI
drops the traceback for labelgate's own errors (spec/input/lock, gate failed) and keeps it
for anything else (a bug). A store that is a file is an input error (exit 2), not an
internal one. The flow cases run the real CLI in a subprocess, because Prefect's console
handler writes to the process's stderr, which `CliRunner` does not capture.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import _ExpectedErrorsWithoutTraceback, app
from labelgate.errors import GateFailedError, InputError
from labelgate.store import locking
from tests.conftest import SpecFactory

ROOT = Path(__file__).parents[1]
WRONG_LABEL = {"id": "tweet_id", "text": ["text"], "label": "sentimnt"}  # a typo
CONTRACT = {"tweet_id": {"dtype": "str", "unique": True}}


def _run_cli(spec: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """`labelgate run SPEC ARGS` in a fresh process against the session's Prefect server."""
    from prefect.settings import get_current_settings

    env = dict(os.environ, PREFECT_API_URL=str(get_current_settings().api.url))
    code = prelude + "from flows.cli import app; app()"
    return subprocess.run(
        [sys.executable, "-c", code, "run", str(spec), *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_wrong_label_column_is_one_error_line_without_traceback(
    make_spec: SpecFactory,
) -> None:
    """`columns.label` names a column the data lacks: exit 2, `error:` naming it, and no
    traceback from Prefect's task or flow log."""
    result = _run_cli(make_spec(columns=WRONG_LABEL, contract=CONTRACT))
    both = result.stdout + result.stderr
    assert result.returncode == 2, both
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, both
    assert "missing column(s) ['sentimnt']" in errors[0]
    assert "part1.csv" in errors[0]
    assert "Traceback" not in both
    assert 'File "' not in both  # no stack frame lines either
    assert "Finished in state Failed" in result.stderr  # Prefect's one-line summary stays


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_gate_failure_exits_1_without_traceback(make_spec: SpecFactory) -> None:
    result = _run_cli(make_spec(gate={"min_rows": 1000}))
    both = result.stdout + result.stderr
    assert result.returncode == 1, both
    assert "gate failed: rows_valid 60 < gate.min_rows 1000" in result.stderr
    assert "Traceback" not in both
    assert "GateFailedError" in result.stderr  # Prefect's one-line log of it remains


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_bug_still_shows_its_traceback(make_spec: SpecFactory) -> None:
    """An unexpected exception in a stage keeps Prefect's traceback (and exits 3)."""
    prelude = (
        "import tasks.contract as st\n"
        "def bug(*a, **k): raise RuntimeError('planted bug')\n"
        "st._contract_by_batch = bug\n"
    )
    result = _run_cli(make_spec(), prelude=prelude)
    both = result.stdout + result.stderr
    assert result.returncode == 3, both
    assert "internal error:" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: planted bug" in result.stderr


def test_store_option_naming_a_file_exits_2(make_spec: SpecFactory, tmp_path: Path) -> None:
    """`--store FILE`: exit 2 before Prefect starts, naming the store and `--store`."""
    spec = make_spec()
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    result = CliRunner().invoke(app, ["run", str(spec), "--store", str(a_file)])
    assert result.exit_code == 2, result.output
    assert f"error: store {a_file} is not a directory (--store)" in result.output
    assert "internal error" not in result.output
    assert a_file.read_text() == "x"


def test_store_under_a_file_cannot_be_created(make_spec: SpecFactory, tmp_path: Path) -> None:
    spec = make_spec()
    (tmp_path / "blocker").write_text("x")
    store = tmp_path / "blocker" / "deeper" / "store"
    result = CliRunner().invoke(app, ["run", str(spec), "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert f"store {store} cannot be created (--store)" in result.output
    assert f"{tmp_path / 'blocker'} is not a directory" in result.output


def test_spec_store_naming_a_file_names_the_spec_key(make_spec: SpecFactory) -> None:
    spec = make_spec(store="items/part1.csv")
    result = CliRunner().invoke(app, ["run", str(spec)])
    assert result.exit_code == 2, result.output
    assert "is not a directory (`store:` in" in result.output
    assert str(spec) in result.output


def test_lock_on_a_file_store_is_an_input_error(tmp_path: Path) -> None:
    """The flow's own path (deployments, no CLI check first): `InputError`, not
    NotADirectoryError."""
    a_file = tmp_path / "store"
    a_file.write_text("x")
    with pytest.raises(InputError, match=r"store .*/store is not a directory \(the spec's"):
        locking.acquire(a_file, "ds", run_id="r1")
    with locking.acquire(tmp_path / "new" / "store", "ds", run_id="r2") as lock:
        assert lock.held and lock.path.is_file()


def _formatted(exc: BaseException) -> str:
    """What a console handler with the filter prints for `log.error(..., exc_info=True)`."""
    try:
        raise exc
    except BaseException:
        record = logging.getLogger("prefect.task_runs").makeRecord(
            "prefect.task_runs", logging.ERROR, __file__, 1,
            "Task run failed with exception: %r", (exc,), sys.exc_info(),
        )
    formatter = logging.Formatter("%(message)s")
    formatter.format(record)  # another handler (Prefect's API one) formatted it first
    assert record.exc_text
    assert _ExpectedErrorsWithoutTraceback().filter(record) is True
    return formatter.format(record)


@pytest.mark.parametrize("exc", [InputError("bad column"), GateFailedError("gate failed")])
def test_filter_drops_the_traceback_of_expected_errors(exc: Exception) -> None:
    text = _formatted(exc)
    assert text == f"Task run failed with exception: {exc!r}"


def test_filter_keeps_the_traceback_of_other_errors() -> None:
    text = _formatted(KeyError("bug"))
    assert text.startswith("Task run failed with exception: KeyError('bug')\nTraceback")


def test_check_reads_the_headers_and_names_what_is_missing(make_spec: SpecFactory,
                                                             tmp_path: Path) -> None:
    """`labelgate check` reads each source's header (only the header): a missing file or
    a missing column is exit 2 naming the key, the file and the column."""
    spec = make_spec()
    ok = CliRunner().invoke(app, ["check", str(spec)])
    assert ok.exit_code == 0, ok.output
    assert "sources: items 1 file(s)" in ok.output
    assert "label issues: off; add a `label_issues:` section" in ok.output  # opt-in, said

    part = tmp_path / "items" / "part1.csv"
    lines = part.read_text().splitlines()
    part.write_text("\n".join([lines[0].replace("sentiment", "sentimnet"), *lines[1:]]) + "\n")
    bad = CliRunner().invoke(app, ["check", str(spec)])
    assert bad.exit_code == 2, bad.output
    assert f"{part}: missing column(s) ['sentiment'] named in the spec (sources.items)" in (
        bad.output)
    assert "sentimnet" in bad.output and "ok —" not in bad.output

    gone = make_spec(sources={"items": {"path": "nowhere/*.csv"}})
    missing = CliRunner().invoke(app, ["check", str(gone)])
    assert missing.exit_code == 2, missing.output
    assert "sources.items.path: no file matches" in missing.output
