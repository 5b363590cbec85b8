"""`labelgate issues`: flagged rows first, then the lowest label quality ("worth a look")."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from labelgate.errors import InputError
from labelgate.stages.label_issues.listing import ISSUE_COLUMNS, worth_a_look
from tests.conftest import SpecFactory, item_rows

ISSUES = pl.DataFrame({
    "id": ["a", "b", "c", "d", "e"],
    "given_label": ["pos", "neg", "pos", "neg", "pos"],
    "suggested_label": ["neg", "neg", "pos", "pos", "neg"],
    "label_quality": [0.30, 0.95, 0.10, 0.05, 0.40],
    "is_label_issue": [True, False, False, True, True],
    "rank": [3, 5, 2, 1, 4],
})


def test_flagged_rows_come_first_then_the_lowest_quality() -> None:
    got = worth_a_look(ISSUES, top=4)
    assert got.get_column("id").to_list() == ["d", "a", "e", "c"]
    assert got.get_column("why").to_list() == ["flagged"] * 3 + ["worth a look"]


def test_a_label_filter_and_an_unknown_label() -> None:
    assert worth_a_look(ISSUES, top=10, label="neg").get_column("id").to_list() == ["d", "b"]
    with pytest.raises(InputError, match=r"--label 'meh': no row has that label; labels: "
                                         r"\['neg', 'pos'\]"):
        worth_a_look(ISSUES, top=10, label="meh")


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_the_command_prints_the_latest_runs_rows(make_spec: SpecFactory) -> None:
    runner = CliRunner()
    spec = make_spec(item_rows(90))
    assert runner.invoke(app, ["run", str(spec)]).exit_code == 0
    none = runner.invoke(app, ["issues", str(spec)])
    assert none.exit_code == 2 and "has no label issues" in none.output

    spec = make_spec(item_rows(90), label_issues={"method": "cross_validated", "folds": 3})
    assert runner.invoke(app, ["run", str(spec)]).exit_code == 0
    shown = runner.invoke(app, ["issues", str(spec), "--top", "5"], terminal_width=100)
    assert shown.exit_code == 0, shown.output
    assert "of 90 rows flagged" in shown.output and "the top 5" in shown.output
    lines = [line for line in shown.output.splitlines() if line.startswith("t0")]
    assert len(lines) == 5
    assert all(line.split()[1] in ("negative", "neutral", "positive") for line in lines)
    only = runner.invoke(app, ["issues", str(spec), "--label", "neutral", "-n", "3"])
    assert only.exit_code == 0 and "(label 'neutral')" in only.output
    assert all(line.split()[1] == "neutral" for line in only.output.splitlines()
               if line.startswith("t0"))


def _sorting_every_row(issues: pl.DataFrame, *, top: int) -> pl.DataFrame:
    """`worth_a_look` as it was: the `top` first rows of every row's order."""
    flagged = pl.col("is_label_issue").fill_null(False)
    order = [flagged, "label_quality", "id"]
    return (issues.select(ISSUE_COLUMNS).bottom_k(top, by=order, reverse=[True, False, False])
            .sort(order, descending=[True, False, False], nulls_last=True)
            .with_columns(pl.when(flagged).then(pl.lit("flagged"))
                          .otherwise(pl.lit("worth a look")).alias("why")))


@pytest.mark.parametrize("share", [0.0, 0.002, 0.05, 1.0])
@pytest.mark.parametrize("top", [0, 1, 50, 5000])
def test_the_flagged_rows_looked_among_alone_give_the_rows_of_every_rows_order(
        share: float, top: int) -> None:
    """The flagged rows searched alone when they are enough, the others for the places
    left: the rows and order of the top of every row's order (qualities tied, ids unique,
    a null flag counted as not flagged)."""
    rng = np.random.default_rng(int(share * 1000) + top)
    n = 4000
    issues = pl.DataFrame({
        "id": [f"r{i:05d}" for i in rng.permutation(n)],
        "given_label": rng.choice(["a", "b"], n).tolist(),
        "suggested_label": rng.choice(["a", "b"], n).tolist(),
        "label_quality": np.round(rng.random(n), 2),  # many ties
        "is_label_issue": pl.Series(rng.random(n) < share).set(
            pl.Series(rng.random(n) < 0.01), None),
    })
    got = worth_a_look(issues, top=top)
    assert got.equals(_sorting_every_row(issues, top=top))
    assert got.height == min(top, n)
