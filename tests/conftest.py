"""Shared fixtures. Prefect settings are fixed before anything imports prefect."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="labelgate-prefect-home-")
# removed when the test process ends (each xdist worker has its own)
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)

TEXTS = [
    "@united my flight was delayed three hours and nobody told us why",
    "@SouthwestAir thanks for the quick rebooking, great crew today",
    "@AmericanAir what time does the lounge open at DFW terminal D",
    "@JetBlue lost my bag again, this is the second time this month",
    "@VirginAmerica loved the mood lighting and the snacks on board",
    "@USAirways is the 6pm to Boston still on schedule tonight",
]
LABELS = ["negative", "positive", "neutral", "negative", "positive", "neutral"]


def item_rows(n: int = 60) -> list[dict[str, Any]]:
    """`n` clean rows cycling through six real-looking tweets and their labels."""
    return [
        {"tweet_id": f"t{i:04d}", "text": f"{TEXTS[i % 6]} #{i}", "sentiment": LABELS[i % 6],
         "confidence": round(0.5 + (i % 5) / 10, 2)}
        for i in range(n)
    ]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    import polars as pl

    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_csv(path)
    return path


def spec_dict(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "tiny-tweets",
        "task": "classification",
        "store": "store",
        "sources": {"items": {"path": "items/*.csv"}},
        "columns": {"id": "tweet_id", "text": ["text"], "label": "sentiment"},
        "contract": {
            "tweet_id": {"dtype": "str", "unique": True},
            "text": {"dtype": "str", "str_length": {"min": 1, "max": 500}},
            "sentiment": {"dtype": "str", "isin": ["negative", "neutral", "positive"]},
            "confidence": {"dtype": "float", "min": 0, "max": 1},
        },
        "gate": {"max_quarantine_rate": 0.1, "min_rows_per_class": 5},
    }
    spec.update(overrides)
    return spec


SpecFactory = Callable[..., Path]


@pytest.fixture
def make_spec(tmp_path: Path) -> SpecFactory:
    """Write a spec (and by default a clean items CSV) into tmp_path; returns the spec path."""

    def make(rows: list[dict[str, Any]] | None = None, **overrides: Any) -> Path:
        write_csv(tmp_path / "items" / "part1.csv", item_rows() if rows is None else rows)
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec_dict(**overrides), sort_keys=False))
        return path

    return make


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """Prefect's temporary server, once per session (about 11 s to start; once per worker
    process under pytest-xdist, each on a free loopback port). The generous start-up
    timeout is for a loaded machine (two workers' servers booting at once at load 10+ took
    over 60 s); it bounds only the wait, nothing is asserted on it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield


# --- Test tiers: `make test` runs everything (CI); `make test-fast` deselects `slow` and
# `flow`. These library tests take 5-50 s each on two cores (real data, many model fits):
# marked `slow` here, by test id, so the fast tier stays under 2 minutes.
SLOW_TESTS = {
    "test_embeddings.py::test_real_tweets_planted_flips_better_with_embeddings",  # ~50 s
    "test_label_issues.py::test_second_pass_finds_the_flips_the_first_misses_in_real_penguins",
    "test_label_issues.py::test_auto_joint_is_the_posterior_on_small_tables_only",
    "test_label_issues.py::test_second_pass_models_never_train_on_the_rows_left_out",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark SLOW_TESTS `slow` (parametrized cases included)."""
    for item in items:
        key = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
        if key in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


# --- "What it survives": each reliability case's outcome, for scripts/survival_report.py ---
SURVIVAL_MODULES = {
    "test_bad_input": "bad input",
    "test_csv_lines": "bad input (CSV lines)",
    "test_properties": "bad input (properties)",
    "test_crash": "crashes",
    "test_concurrency": "concurrency",
}
SURVIVAL_JSON_ENV = "LABELGATE_SURVIVAL_JSON"
SURVIVAL_PROPERTY = "labelgate_survival"  # the record's key in the report's user_properties
_survival_records: list[dict[str, Any]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Record each reliability case: battery, case (test id), what it checks, outcome. The
    record rides on the report (user_properties), so that under pytest-xdist it reaches the
    controlling process with the report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    battery = SURVIVAL_MODULES.get(item.path.stem)
    if battery is None or not isinstance(item, pytest.Function):
        return
    if report.when != "call" and report.passed:
        return  # setup/teardown passed: the call phase records the case
    doc = (item.function.__doc__ or "").strip()
    report.user_properties.append((SURVIVAL_PROPERTY, {
        "battery": battery, "module": item.path.stem, "test": item.originalname,
        "case": item.name, "checks": " ".join(doc.split("\n\n")[0].split()),
        "outcome": report.outcome if report.skipped or report.when == "call" else "error",
    }))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the records (in the one process, or the xdist controller from its workers)."""
    for name, value in report.user_properties:
        if name == SURVIVAL_PROPERTY:
            _survival_records.append(value)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write build/survival.json (or $LABELGATE_SURVIVAL_JSON) when reliability cases ran;
    under pytest-xdist the controller writes it, not each worker."""
    import json

    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: its reports went to the controller
    records = list(_survival_records)
    if not records:
        return
    path = Path(os.environ.get(SURVIVAL_JSON_ENV) or session.config.rootpath / "build" /
                "survival.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cases": records}, indent=2) + "\n", encoding="utf-8")
