from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import item_rows, spec_dict, write_csv

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


def _dataset(root: Path, name: str, **overrides: object) -> None:
    folder = root / name
    write_csv(folder / "items" / "part1.csv", item_rows(30))
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec_dict(name=name, **overrides)))


def test_nightly_runs_every_spec_and_names_the_failures(tmp_path: Path) -> None:
    from flows.nightly import nightly

    _dataset(tmp_path, "a-good")
    _dataset(tmp_path, "b-gate-fails", gate={"min_rows_per_class": 1000})
    _dataset(tmp_path, "c-good")
    store = tmp_path / "store"
    state = nightly(str(tmp_path), "*/spec.yaml", str(store), return_state=True)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "1 of 3 dataset(s) did not pass" in message and "b-gate-fails" in message
    # the failing dataset did not stop the one after it
    for name in ("a-good", "b-gate-fails", "c-good"):
        assert (store / "reports" / name / "latest" / "report.json").is_file(), name


def test_nightly_with_no_specs_fails_clearly(tmp_path: Path) -> None:
    from flows.nightly import nightly

    state = nightly(str(tmp_path), "*/spec.yaml", return_state=True)
    assert "no spec matches" in str(state.result(raise_on_failure=False))
