"""What makes the report's plots cheaper to draw at night (issue 26) changes none of them:
bars drawn as one collection per colour draw what one patch per bar draws, the ticks an
axis keeps while its figure is drawn and measured are the ones it would compute again, the
plot cache's key needs no pyplot, and the templates compiled by an earlier process are the
ones this one would compile."""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jinja2 import DictLoader, Environment
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from labelgate.report import plots, render

_GROUP = re.compile(r'^\s*(<g id="[^"]*">|</g>)\n', re.MULTILINE)


def drawing(svg: str) -> str:
    """An SVG without its group tags: what it draws, in the order it draws it."""
    return _GROUP.sub("", svg)


def _bars_as_patches(ax: Axes, lefts: Any, widths: Any, bottoms: Any, heights: Any,
                     color: Any, *, label: str = "", edgecolor: str = "none",
                     linewidth: float | None = None, horizontal: bool = False,
                     sticky: bool = True) -> Rectangle:
    """`plots._bars` as matplotlib's ``bar`` draws it: one patch per bar."""
    x0, y0, w, h = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                         for v in (lefts, bottoms, widths, heights)))
    style: dict[str, Any] = {"edgecolor": edgecolor, "linewidth": linewidth}
    bars = (ax.barh(y0, w, h, x0, align="edge", color=color, **style) if horizontal
            else ax.bar(x0, h, w, y0, align="edge", color=color, **style))
    if not sticky:
        for bar in bars:
            bar.sticky_edges.x[:] = bar.sticky_edges.y[:] = []
    first = color if isinstance(color, str) else (color[0] if len(color) else plots.BAR_COLOR)
    return Rectangle((0.0, 0.0), 1.0, 1.0, facecolor=first, label=label, **style)


_rng = np.random.default_rng(26)
_PLOTS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("bar_chart", (["negative", "neutral", "positive"], [0.655, 0.71, 0.69]),
     {"title": "quality", "xlim": (0.0, 1.1)}),
    ("bar_chart", (["a", "b", "c", "d"], [3.0, None, -2.0, 0.0]),
     {"title": "with gaps", "reference": 1.0, "colors": ["#111111", "#222222",
                                                          "#333333", "#444444"]}),
    ("bar_chart", (["only one"], [21165.0]), {"title": "one bar", "percent": True}),
    ("bar_chart", ([], []), {"title": "no bars"}),
    ("stacked_bars", (["train", "validation", "test"],
                      {"neg": [800.0, 100.0, 0.0], "pos": [0.0, 0.0, 0.0],
                       "neu": [500.0, 90.0, 70.0]}), {"title": "rows"}),
    ("stacked_bars", (["train", "test"], {"neg": [8.0, 1.0], "pos": [2.0, 0.0]}),
     {"title": "mix", "share": True}),
    ("stacked_bars", (["all"], {f"class {i}": [float(i)] for i in range(14)}),
     {"title": "no legend"}),
    ("stacked_bars", (["train", "test"], {"_hidden": [1.0, 2.0], "shown": [3.0, 1.0]}),
     {"title": "a label bar leaves out of the legend"}),
    ("binned_histogram", ([int(v) for v in _rng.integers(0, 90_000, 25)],
                          [int(v) for v in _rng.integers(0, 900, 25)]),
     {"title": "quality", "xlabel": "x"}),
    # the tallest bin has no flagged row: its flagged bar's base is not a sticky edge
    ("binned_histogram", ([0, 5, 70, 3], [4, 2, 0, 1]), {"title": "q", "xlabel": "x"}),
    ("binned_histogram", ([960], [897]), {"title": "one bin", "xlabel": "x"}),
    ("binned_histogram", ([6803, 8305, 5246, 3768, 3059, 3717], None),
     {"title": "one colour", "xlabel": "x", "value_range": (-0.5, 1.5)}),
    ("binned_histogram", ([0] * 25, None), {"title": "empty", "xlabel": "x"}),
]


@pytest.mark.parametrize(("kind", "args", "kwargs"), _PLOTS)
def test_bars_in_one_collection_draw_what_one_patch_per_bar_draws(
        kind: str, args: tuple[Any, ...], kwargs: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    got = getattr(plots, kind)(*args, **kwargs)
    monkeypatch.setattr(plots, "_bars", _bars_as_patches)
    want = getattr(plots, kind)(*args, **kwargs)
    assert drawing(got) == drawing(want)


_EVERY_KIND: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    *_PLOTS,
    ("heatmap", (["a", "b"], ["a", "b", "c"], [[5, 1, 0], [2, 9, 1]]),
     {"title": "noise", "xlabel": "suggested", "ylabel": "given"}),
    ("heatmap", (["a", "b"], ["a", "b"], [[0.5, 0.01], [0.04, 0.45]]),
     {"title": "joint", "xlabel": "true", "ylabel": "given", "shares": True}),
    ("line_plot", (["r1", "r2", "r3"], [0.01, None, 0.02]),
     {"title": "rate", "passed": [True, None, False], "percent": True}),
    ("sparkline", ([0.1, 0.2, 0.15],), {"passed": [True, True, False]}),
    ("interval_plot", (["alpha", "kappa"], [0.61, 0.7], [(0.5, 0.7), (None, None)]),
     {"title": "agreement", "reference": 0.667, "reference_label": "tentative"}),
]


@pytest.mark.parametrize(("kind", "args", "kwargs"), _EVERY_KIND)
def test_ticks_kept_through_the_draw_are_the_ticks_drawn_again(
        kind: str, args: tuple[Any, ...], kwargs: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte for byte: the same ticks, labels, places and crop as when every axis computes
    them each time it is asked."""
    kept = getattr(plots, kind)(*args, **kwargs)
    monkeypatch.setattr(plots, "_ticks_kept", lambda fig, placed=False: nullcontext())
    assert kept == getattr(plots, kind)(*args, **kwargs)


def test_the_kept_ticks_are_given_back() -> None:
    fig = plots._figure(2.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    with plots._ticks_kept(fig):
        assert "_update_ticks" in vars(ax.xaxis)
    assert "_update_ticks" not in vars(ax.xaxis) and "_update_ticks" not in vars(ax.yaxis)


def test_a_plot_key_needs_no_pyplot() -> None:
    """Reading matplotlib's settings through ``rcParams[...]`` would resolve its backend,
    which imports pyplot (~25 ms in the report stage)."""
    code = ("import sys\nfrom labelgate.report import plot_cache, plots\n"
            "assert plot_cache.key('bar_chart', (['a'], [1.0]), {'title': 't'})\n"
            "plots.bar_chart(['a'], [1.0], title='t')\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _environment(tmp_path: Path, settings: bytes = b"settings") -> Environment:
    cache = render._KeptCompiled(settings, directory=str(tmp_path))
    return Environment(loader=DictLoader({"t.j2": "{{ x }}!"}), bytecode_cache=cache)


def test_a_template_compiled_before_is_read_not_compiled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _environment(tmp_path).get_template("t.j2").render(x=1) == "1!"
    assert list(tmp_path.glob("__labelgate_*.cache"))
    again = _environment(tmp_path)
    monkeypatch.setattr(again, "compile", lambda *a, **k: pytest.fail("compiled again"))
    assert again.get_template("t.j2").render(x=2) == "2!"


def test_other_environment_settings_compile_again(tmp_path: Path) -> None:
    _environment(tmp_path).get_template("t.j2")
    compiled: list[str] = []
    other = _environment(tmp_path, settings=b"other settings")
    compile_ = other.compile

    def counted(source: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(source)
        return compile_(source, *args, **kwargs)

    other.compile = counted  # type: ignore[method-assign,assignment]
    assert other.get_template("t.j2").render(x=3) == "3!"
    assert compiled == ["{{ x }}!"]


def test_a_cache_that_cannot_be_written_is_not_used(tmp_path: Path) -> None:
    env = _environment(tmp_path / "missing")  # no such folder: nothing written, no error
    assert env.get_template("t.j2").render(x=4) == "4!"
    assert render._environment().get_template("report.md.j2") is not None
