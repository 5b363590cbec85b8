"""The report at night (issue 26): the label-quality histogram is binned before it is
drawn, so its plot's inputs are its counts (a night whose new rows leave every bin's count
as it was reads the plot from the plot cache), and it draws what matplotlib's ``hist`` of
the values draws, element for element (its bars in one group per colour instead of one
group per bar: `labelgate.report.plots._bars`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import polars as pl
import pytest

from labelgate.report import plot_cache, plots
from labelgate.report.binning import bin_counts
from labelgate.report.sections.label_issues import label_issues_view


def _hist_of_values(values: np.ndarray, *, flagged: np.ndarray | None, title: str,
                    xlabel: str, bins: int = 25,
                    value_range: tuple[float, float] = (0.0, 1.0)) -> str:
    """The histogram as it was drawn before it was binned first: ``hist`` of the values."""
    vals = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(vals)
    edges = [float(e) for e in np.linspace(value_range[0], value_range[1], bins + 1)]
    with matplotlib.rc_context(plots._style()):
        fig = plots._figure(2.4)
        ax = fig.add_subplot()
        if flagged is None:
            ax.hist(vals[keep], bins=edges, color=plots.BAR_COLOR, edgecolor="white",
                    linewidth=0.5)
        else:
            flag = np.asarray(flagged, dtype=bool)
            ax.hist([vals[keep & ~flag], vals[keep & flag]], bins=edges, stacked=True,
                    color=[plots.BAR_COLOR, plots.FAIL_COLOR],
                    label=["not flagged", "flagged as issue"], edgecolor="white",
                    linewidth=0.5)
            ax.legend(frameon=False, fontsize=8, loc="upper left")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("rows")
        ax.grid(axis="y")
        ax.set_axisbelow(True)
        return plots._to_svg(fig, "hist")


_GROUP = re.compile(r'^\s*(<g id="[^"]*">|</g>)\n', re.MULTILINE)


def drawing(svg: str) -> str:
    """An SVG without its group tags: what it draws, in the order it draws it."""
    return _GROUP.sub("", svg)


def _values(n: int, seed: int) -> np.ndarray:
    """Values with a NaN, both ends, every edge and its neighbours (where a bin is decided
    by the last bit)."""
    rng = np.random.default_rng(seed)
    edges = np.linspace(0.0, 1.0, 26)
    return np.concatenate([rng.random(n), [np.nan, 0.0, 1.0, -0.1, 1.1], edges,
                           np.nextafter(edges, 2.0), np.nextafter(edges, -1.0)])


@pytest.mark.parametrize(("n", "share"), [(0, None), (3, 0.5), (2000, None), (2000, 0.05),
                                          (500, 1.0)])
def test_the_binned_histogram_is_the_histogram_of_the_values(n: int,
                                                             share: float | None) -> None:
    values = _values(n, seed=n)
    flagged = (None if share is None
               else np.random.default_rng(1).random(len(values)) < share)
    want = drawing(_hist_of_values(values, flagged=flagged, title="q", xlabel="x"))
    assert drawing(plots.histogram(values, flagged=flagged, title="q", xlabel="x")) == want
    counts, flagged_counts = bin_counts(values, flagged=flagged)
    got = plots.binned_histogram(counts, flagged_counts, title="q", xlabel="x")
    assert drawing(got) == want
    # outside the range: -0.1, 1.1, and the neighbours beyond 0.0 and 1.0
    finite = int(np.isfinite(values).sum()) - 4
    assert sum(counts) + sum(flagged_counts or []) == finite
    assert (flagged_counts is None) == (flagged is None)


def test_other_ranges_and_bins_count_as_hist_does() -> None:
    values = _values(300, seed=3) * 3 - 1
    flagged = np.arange(len(values)) % 3 == 0
    want = _hist_of_values(values, flagged=flagged, title="d", xlabel="x", bins=10,
                           value_range=(-0.5, 1.5))
    got = plots.histogram(values, flagged=flagged, title="d", xlabel="x", bins=10,
                          value_range=(-0.5, 1.5))
    assert drawing(got) == drawing(want)
    counts, _ = bin_counts(np.array([-0.5, 0.0, 0.2, 1.5, 1.6]), bins=2, value_range=(-0.5, 1.5))
    assert counts == [3, 1]  # [-0.5, 0.5) and [0.5, 1.5] (closed), 1.6 outside


def _table(quality: list[float], flags: list[bool]) -> pl.DataFrame:
    return pl.DataFrame({"label_quality": quality, "is_label_issue": flags})


def _histogram_plot(frame: pl.DataFrame) -> Any:
    section = label_issues_view({"count": 1, "rate": 0.1}, frame)
    found = [p for part in section.parts for p in part.plots if "hist" in p.kind]
    assert len(found) == 1
    return found[0]


def test_the_section_hands_over_counts_not_rows() -> None:
    plot = _histogram_plot(_table([0.01, 0.5, 0.51, 0.99, float("nan")],
                                  [True, False, False, False, False]))
    assert plot.kind == "binned_histogram"
    counts, flagged_counts = plot.args
    assert len(counts) == len(flagged_counts) == 25
    assert sum(counts) == 3 and sum(flagged_counts) == 1
    assert flagged_counts[0] == 1 and counts[12] == 2 and counts[24] == 1
    assert plot.kwargs["title"] == "Label quality (5 rows)"


def test_a_night_that_leaves_the_counts_reads_the_histogram(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows whose quality moved within its bin: the same counts, so the kept plot."""
    drawn: list[Any] = []
    draw = plots.binned_histogram

    def counted(*args: Any, **kwargs: Any) -> str:
        drawn.append(args)
        return draw(*args, **kwargs)

    monkeypatch.setattr(plots, "binned_histogram", counted)
    before = _table([0.10, 0.50, 0.90], [True, False, False])
    after = _table([0.11, 0.51, 0.91], [True, False, False])
    moved = _table([0.10, 0.50, 0.99], [False, False, True])
    with plot_cache.kept_in(tmp_path):
        first = str(_histogram_plot(before).svg())
    with plot_cache.kept_in(tmp_path):
        again = str(_histogram_plot(after).svg())
    assert first == again
    assert len(drawn) == 1
    with plot_cache.kept_in(tmp_path):
        other = str(_histogram_plot(moved).svg())
    assert other != first
    assert len(drawn) == 2
