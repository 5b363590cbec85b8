"""The report's plots are cropped as matplotlib's tight bounding box crops them, in one draw
(`labelgate.report.plots._to_svg`; issue 22's fixed cost)."""

from __future__ import annotations

import io
import re

import pytest
from matplotlib.backend_bases import RendererBase
from matplotlib.figure import Figure

from labelgate.report import plots

_SVG = re.compile(r'width="([\d.]+)pt" height="([\d.]+)pt" viewBox="([-\d. ]+)"')
_PATCH = re.compile(r'<g id="patch_1">\s*<path d="M (\S+) (\S+) \s*L (\S+) (\S+) \s*'
                    r'L (\S+) (\S+) \s*L (\S+) (\S+) \s*z')


def _figure() -> Figure:
    """A plot whose labels reach past the figure's left and top edges."""
    fig = Figure(figsize=(3.0, 1.5))
    ax = fig.add_subplot()
    ax.barh([0, 1], [3.0, 5.0])
    ax.set_yticks([0, 1], ["a rather long class name", "short"])
    ax.set_title("a title " * 6)
    return fig


def _size(svg: str) -> tuple[float, float, list[float]]:
    found = _SVG.search(svg)
    assert found is not None
    return float(found[1]), float(found[2]), [float(v) for v in found[3].split()]


def test_the_crop_is_matplotlibs_tight_box() -> None:
    buf = io.StringIO()
    _figure().savefig(buf, format="svg", bbox_inches="tight", pad_inches=plots._PAD)
    width, height, view = _size(buf.getvalue())
    assert view[:2] == [0.0, 0.0]
    new_width, new_height, new_view = _size(plots._to_svg(_figure(), "t"))
    assert new_width == pytest.approx(width, abs=1e-3)
    assert new_height == pytest.approx(height, abs=1e-3)
    assert new_view[2:] == pytest.approx([width, height], abs=1e-3)
    assert new_view[0] < 0  # the long tick label reaches past the figure's left edge


def test_the_background_covers_the_crop() -> None:
    svg = plots._to_svg(_figure(), "t")
    _, _, (x0, y0, w, h) = _size(svg)
    corners = _PATCH.search(svg)
    assert corners is not None
    xs = sorted({float(v) for v in corners.groups()[0::2]})
    ys = sorted({float(v) for v in corners.groups()[1::2]})
    assert xs == pytest.approx([x0, x0 + w], abs=1e-5)
    assert ys == pytest.approx([y0, y0 + h], abs=1e-5)


def test_a_plot_is_drawn_once(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[bool] = []
    draw = Figure.draw

    def counted(self: Figure, renderer: RendererBase) -> None:
        draws.append(True)
        draw(self, renderer)

    monkeypatch.setattr(Figure, "draw", counted)
    plots.bar_chart(["a", "b"], [1.0, 2.0], title="t")
    assert len(draws) == 1
    draws.clear()
    plots.sparkline([0.1, 0.2])  # not cropped: its size is its figure's
    assert len(draws) == 1


def test_a_sparkline_keeps_its_figure_size() -> None:
    _, _, view = _size(plots.sparkline([0.1, 0.2, 0.3]))
    assert view == pytest.approx([0.0, 0.0, 1.9 * 72, 0.42 * 72])
