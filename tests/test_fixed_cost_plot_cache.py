"""Drawn plots kept between runs (`labelgate.report.plot_cache`; issue 22's fixed cost): a
plot with the same inputs is read, not drawn, and reads the same as a fresh drawing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import pytest

from labelgate.report import plot_cache, plots
from labelgate.report.index import index_entries
from labelgate.report.view import _plot


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The bar charts actually drawn (each call's labels)."""
    calls: list[tuple[Any, ...]] = []
    draw = plots.bar_chart

    def counted(labels: Any, *args: Any, **kwargs: Any) -> str:
        calls.append(tuple(labels))
        return draw(labels, *args, **kwargs)

    monkeypatch.setattr(plots, "bar_chart", counted)
    return calls


def test_a_plot_with_the_same_inputs_is_read_not_drawn(
        tmp_path: Path, drawn: list[tuple[Any, ...]]) -> None:
    plot = _plot("bar_chart", ["a", "b"], [1.0, 2.0], title="rows")
    fresh = str(plot.svg())
    with plot_cache.kept_in(tmp_path):
        first = str(plot.svg())
    with plot_cache.kept_in(tmp_path):
        again = str(_plot("bar_chart", ["a", "b"], [1.0, 2.0], title="rows").svg())
    assert first == again == fresh
    assert drawn == [("a", "b"), ("a", "b")]  # outside the block, then once inside
    assert len(list(tmp_path.glob("*.svg"))) == 1


def test_other_inputs_are_drawn_and_the_folder_keeps_one_pages_plots(
        tmp_path: Path, drawn: list[tuple[Any, ...]]) -> None:
    with plot_cache.kept_in(tmp_path):
        _plot("bar_chart", ["a"], [1.0], title="rows").svg()
        _plot("bar_chart", ["b"], [1.0], title="rows").svg()
    assert len(list(tmp_path.glob("*.svg"))) == 2
    with plot_cache.kept_in(tmp_path):
        _plot("bar_chart", ["b"], [1.0], title="rows").svg()
        _plot("bar_chart", ["b"], [2.0], title="rows").svg()  # a value changed
    assert drawn == [("a",), ("b",), ("b",)]
    kept = {p.stem for p in tmp_path.glob("*.svg")}
    assert kept == {plot_cache.key("bar_chart", (["b"], [1.0]), {"title": "rows"}),
                    plot_cache.key("bar_chart", (["b"], [2.0]), {"title": "rows"})}


def test_a_failed_page_removes_nothing(tmp_path: Path) -> None:
    with plot_cache.kept_in(tmp_path):
        _plot("bar_chart", ["a"], [1.0], title="rows").svg()
    with pytest.raises(RuntimeError), plot_cache.kept_in(tmp_path):
        raise RuntimeError("the page failed")
    assert len(list(tmp_path.glob("*.svg"))) == 1


def test_unpicklable_inputs_are_drawn_every_time(
        tmp_path: Path, drawn: list[tuple[Any, ...]]) -> None:
    class Line(float):  # a local class: its values cannot be pickled, so no key
        pass

    kwargs = {"title": "rows", "reference": Line(0.5)}
    assert plot_cache.key("bar_chart", (["a"], [1.0]), kwargs) is None
    with plot_cache.kept_in(tmp_path):
        for _ in range(2):
            plot_cache.draw("bar_chart", (["a"], [1.0]), kwargs)
    assert len(drawn) == 2
    assert not list(tmp_path.glob("*.svg"))


def test_outside_a_block_nothing_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         drawn: list[tuple[Any, ...]]) -> None:
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        _plot("bar_chart", ["a"], [1.0], title="rows").svg()
    assert len(drawn) == 2
    assert not list(tmp_path.rglob("*.svg"))


def test_the_key_follows_the_drawing_settings() -> None:
    args, kwargs = (["a"], [1.0]), {"title": "rows"}
    before = plot_cache.key("bar_chart", args, kwargs)
    assert before == plot_cache.key("bar_chart", (["a"], [1.0]), {"title": "rows"})
    assert before != plot_cache.key("bar_chart", args, {"title": "rows", "percent": True})
    assert before != plot_cache.key("histogram", args, kwargs)
    plot_cache._drawing.cache_clear()
    try:
        with matplotlib.rc_context({"axes.linewidth": 3.0}):
            changed = plot_cache.key("bar_chart", args, kwargs)
    finally:
        plot_cache._drawing.cache_clear()
    assert changed != before
    assert plot_cache.key("bar_chart", args, kwargs) == before


def test_the_indexs_plot_folder_is_no_dataset(tmp_path: Path) -> None:
    (tmp_path / "reports" / ".plots").mkdir(parents=True)
    (tmp_path / "reports" / "tweets").mkdir()
    assert [e.name for e in index_entries(tmp_path)] == ["tweets"]


def test_a_kept_plot_is_readable_as_the_reports_files_are(tmp_path: Path) -> None:
    with plot_cache.kept_in(tmp_path):
        _plot("bar_chart", ["a"], [1.0], title="rows").svg()
    (kept,) = tmp_path.glob("*.svg")
    assert kept.stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob(".plot-*"))  # no temp file left
