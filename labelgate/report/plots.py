"""Small matplotlib plots rendered to inline SVG strings for the HTML report.

Every function builds its own ``matplotlib.figure.Figure`` (no pyplot, so no global figure
registry and no GUI backend) and returns an ``<svg ...>`` element ready to inline in HTML:
the XML prolog and DOCTYPE are stripped, fonts stay text (``svg.fonttype: none``, which keeps
a plot to a few KB), and ids are salted per plot so that several plots in one page never
share a clip-path id. Matplotlib escapes text in its SVG output (``<`` and ``&`` in a class
name become ``&lt;`` and ``&amp;``), and mathtext is off (``text.parse_math: False``), so a
label like ``$5 off`` from the data is drawn as written instead of failing to parse.

Output is deterministic for the same inputs (no date in the metadata, fixed id salt).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize, PowerNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import PercentFormatter
from matplotlib.transforms import Bbox

from labelgate.report.binning import bin_counts
from labelgate.report.text import visible_controls

__all__ = [
    "COLORS",
    "bar_chart",
    "binned_histogram",
    "heatmap",
    "histogram",
    "interval_plot",
    "line_plot",
    "sparkline",
    "stacked_bars",
]

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
COLORS = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
)
PASS_COLOR = "#1a7f37"
FAIL_COLOR = "#cf222e"
BAR_COLOR = "#0072B2"
LABEL_MAX = 28
_WIDTH = 5.6  # inches; the report shows two plots side by side at 1200 px


def _style() -> dict[Any, Any]:
    """Matplotlib settings for every report plot (a fresh dict: no shared mutable state)."""
    return {
        "svg.fonttype": "none",
        "text.parse_math": False,
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial"],
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.titleweight": "bold",
        "axes.titlelocation": "left",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": "#8c959f",
        "axes.labelcolor": "#24292f",
        "xtick.color": "#57606a",
        "ytick.color": "#57606a",
        "grid.color": "#d0d7de",
        "grid.linewidth": 0.6,
        "svg.image_inline": True,
    }


_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)
_SIZE = re.compile(r'width="[\d.]+pt" height="(?P<height>[\d.]+)pt" viewBox="0 0 [\d.]+ [\d.]+"')
_PATCH = re.compile(r'(?P<open><g id="patch_1">\s*<path )d="[^"]*"')
_PAD = 0.06  # inches around a tight plot, as savefig's pad_inches


def short(label: object, limit: int = LABEL_MAX) -> str:
    """A tick label: str() of the value, cut to `limit` characters with an ellipsis."""
    text = "—" if label is None else " ".join(visible_controls(str(label)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.3g}"


def _pct(value: float) -> str:
    """A share as a percentage label: one decimal, two below 1% (0.04% is not "0.0%")."""
    if not math.isfinite(value):
        return "—"
    return f"{value:.2%}" if 0 < abs(value) < 0.01 else f"{value:.1%}"


def _percent_ticks() -> PercentFormatter:
    """Tick labels for shares (0..1) with as many decimals as the axis range needs, so ticks
    0.002 apart read 0.2%, 0.4%, ... and not 0%, 0%, 1%."""
    return PercentFormatter(xmax=1.0, decimals=None)


def _figure(height: float, width: float = _WIDTH) -> Figure:
    return Figure(figsize=(width, max(height, 1.2)))


def _to_svg(fig: Figure, salt: str, *, css_class: str = "plot", tight: bool = True) -> str:
    """The figure as an ``<svg>`` element; `tight`: cropped to what it draws (plus
    `_PAD` inches), as ``bbox_inches="tight"`` crops it, in one draw instead of two.

    Matplotlib's tight crop lays the figure out once to measure it, then draws it again,
    shifted. Here the figure is drawn once, at its size; its tight box is measured at the
    end of that draw (the ``draw_event``, with the drawing's own renderer, so every tick
    and text is where the drawing put it), and the SVG's size and viewBox are set to that
    box, the figure's background rectangle widened to cover it (`_crop`)."""
    boxes: list[Bbox] = []

    def measure(event: Any) -> None:
        with _ticks_kept(fig):  # every axis now: those placed by the draw are placed
            boxes.append(fig.get_tightbbox(event.renderer))

    cid = fig.canvas.mpl_connect("draw_event", measure) if tight else None
    buf = io.StringIO()
    salt_rc: dict[Any, Any] = {"svg.hashsalt": f"labelgate-{salt}"}
    try:
        with matplotlib.rc_context(salt_rc), _ticks_kept(fig, placed=True):
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    finally:
        if cid is not None:
            fig.canvas.mpl_disconnect(cid)
    svg = _METADATA.sub("", _PROLOG.sub("", buf.getvalue(), count=1), count=1)
    if boxes:
        svg = _crop(svg, boxes[0].padded(_PAD))
    # Natural size (same font size in every plot); CSS shrinks it to the column if needed.
    return svg.replace("<svg ", f'<svg class="{css_class}" ', 1)


@contextmanager
def _ticks_kept(fig: Figure, *, placed: bool = False) -> Iterator[None]:
    """Within: each axis of `fig` answers ``_update_ticks`` with its ticks computed once on
    entry, instead of locating, formatting and placing them again.

    Drawing a figure asks each axis for its ticks several times (its own drawing, its
    label's and the title's placing, the spine's extent) and measuring its tight box as
    many times again, and matplotlib computes them afresh each time. They depend on the
    axis' view limits and the axes' size, which are settled when the figure is (its
    limits are settled here first): the same ticks every time. `placed`:
    only the axes whose place and limits are already known (an axes with an axes
    locator, such as a colorbar's, or a fixed aspect is placed or limited during the
    draw: its ticks are kept from the measuring on).
    Kept as an attribute of each axis object, removed on exit; an axis already kept, or
    a matplotlib without that private method, is left as it is."""
    patched = []
    try:
        for ax in fig.axes:
            if placed and (ax.get_axes_locator() is not None or ax.get_aspect() != "auto"):
                continue
            ax.get_xlim()  # settles the limits (autoscaling), as the draw does first
            both: list[Any] = [ax.xaxis, ax.yaxis]  # (a private method: not in the stubs)
            for axis in both:
                if "_update_ticks" in vars(axis) or not callable(
                        getattr(axis, "_update_ticks", None)):
                    continue
                ticks = axis._update_ticks()
                axis._update_ticks = lambda ticks=ticks: ticks
                patched.append(axis)
        yield
    finally:
        for axis in patched:
            del axis._update_ticks


def _num(value: float) -> str:
    """A coordinate as matplotlib's SVG writes one (six decimals, trailing zeros cut)."""
    text = f"{value:f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _crop(svg: str, box: Bbox) -> str:
    """`svg` (a whole figure, in points) shown only inside `box` (inches, from the bottom
    left): its width, height and viewBox set to the box, and the figure's background
    rectangle (``patch_1``, the first path) widened to the box, which may reach past the
    figure's edge where a label does."""
    size = _SIZE.search(svg)
    if size is None:
        raise ValueError("matplotlib's SVG has no width, height and viewBox in points")
    x0, y0 = box.x0 * 72, float(size.group("height")) - box.y1 * 72
    width, height = box.width * 72, box.height * 72
    x1, y1 = x0 + width, y0 + height
    head = (f'width="{_num(width)}pt" height="{_num(height)}pt" '
            f'viewBox="{_num(x0)} {_num(y0)} {_num(width)} {_num(height)}"')
    svg = svg[:size.start()] + head + svg[size.end():]
    rect = (f'd="M {_num(x0)} {_num(y1)} \nL {_num(x1)} {_num(y1)} \nL {_num(x1)} {_num(y0)} '
            f'\nL {_num(x0)} {_num(y0)} \nz\n"')
    return _PATCH.sub(lambda m: m.group("open") + rect, svg, count=1)


def warm() -> None:
    """Draw one small plot and drop it, so that the fonts, the SVG backend and matplotlib's
    text layout are loaded before the first report plot (`flows.warm`: while Prefect's
    server boots)."""
    bar_chart(["warm"], [1.0], title="warm", xlabel="warm", percent=True)


def bar_chart(
    labels: Sequence[object],
    values: Sequence[float | None],
    *,
    title: str,
    xlabel: str = "",
    xlim: tuple[float, float] | None = None,
    reference: float | None = None,
    colors: Sequence[str] | None = None,
    percent: bool = False,
    salt: str = "bar",
) -> str:
    """Horizontal bars, one per label (first label on top), each with its value written at
    its end; `None` values show as "—" with no bar. `reference` draws a dashed line."""
    vals = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    n = len(labels)
    with matplotlib.rc_context(_style()):
        fig = _figure(0.28 * n + 0.75)
        ax = fig.add_subplot()
        y = np.arange(n)
        _bars(ax, 0.0, np.nan_to_num(vals), y - 0.35, 0.7,
              list(colors) if colors else BAR_COLOR, horizontal=True)
        ax.set_yticks(y, [short(v) for v in labels])
        ax.invert_yaxis()
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x")
        ax.set_axisbelow(True)
        finite = vals[np.isfinite(vals)]
        top = float(finite.max()) if finite.size else 1.0
        if xlim is not None:
            ax.set_xlim(*xlim)
        else:
            ax.set_xlim(min(0.0, float(finite.min()) if finite.size else 0.0),
                        top * 1.18 if top > 0 else 1.0)
        if reference is not None:
            ax.axvline(reference, color=FAIL_COLOR, linestyle="--", linewidth=1)
        for yi, v in zip(y, vals, strict=True):
            text = "—" if not math.isfinite(v) else (_pct(v) if percent else _fmt(v))
            ax.annotate(text, (0.0 if not math.isfinite(v) else max(v, 0.0), yi),
                        xytext=(3, 0), textcoords="offset points", va="center", fontsize=8,
                        color="#24292f")
        if percent:
            ax.xaxis.set_major_formatter(_percent_ticks())
        return _to_svg(fig, salt)


def heatmap(
    row_labels: Sequence[object],
    col_labels: Sequence[object],
    matrix: Sequence[Sequence[float]] | np.ndarray[Any, Any],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    normalize_rows: bool = True,
    shares: bool = False,
    scale_label: str | None = None,
    salt: str = "heatmap",
) -> str:
    """A matrix as a heatmap, each cell annotated with its value.

    Counts (the default): the colour is the cell's share of its row (`normalize_rows`), so a
    small class's confusions show as clearly as a large one's; else its share of the largest
    cell. With `shares`, the cells are shares of all rows (an estimated joint distribution):
    each is written as a percentage and the colour is the share itself, on a square-root
    scale (so a 2% cell is visible next to a 45% one) labelled in percent.
    `scale_label` names the colour scale (default: what the colour shows).
    """
    counts = np.asarray(matrix, dtype=np.float64)
    peak = float(counts.max()) if counts.size else 0.0
    norm: Normalize
    if shares:
        shade = counts
        norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=peak if peak > 0 else 1.0)
    elif normalize_rows:
        totals = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            shade = np.where(totals > 0, counts / np.maximum(totals, 1e-300), 0.0)
        norm = Normalize(vmin=0.0, vmax=1.0)
    else:
        shade = counts / peak if peak > 0 else counts
        norm = Normalize(vmin=0.0, vmax=1.0)
    n_rows, n_cols = counts.shape
    side = min(max(0.42 * n_cols + 1.9, 3.2), _WIDTH)
    with matplotlib.rc_context(_style()):
        fig = _figure(0.36 * n_rows + 1.3, width=side + 0.9)
        ax = fig.add_subplot()
        im = ax.imshow(shade, cmap="Blues", norm=norm, aspect="auto")
        ticks = [short(v, 16) for v in col_labels]
        rotate = n_cols > 3 or max((len(t) for t in ticks), default=0) > 9
        ax.set_xticks(np.arange(n_cols), ticks, rotation=30 if rotate else 0,
                      ha="right" if rotate else "center", rotation_mode="anchor")
        ax.set_yticks(np.arange(n_rows), [short(v, 20) for v in row_labels])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.spines[:].set_visible(False)
        ax.tick_params(length=0)
        if n_rows * n_cols <= 400:
            for i in range(n_rows):
                for j in range(n_cols):
                    dark = float(norm(shade[i, j])) > 0.55
                    ax.text(j, i, _pct(counts[i, j]) if shares else _fmt(counts[i, j]),
                            ha="center", va="center", fontsize=8,
                            color="white" if dark else "#24292f")
        bar = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
        if shares:
            bar.ax.yaxis.set_major_formatter(_percent_ticks())
        default = ("share of all rows" if shares else
                   "share of row" if normalize_rows else "share of max")
        bar.set_label(scale_label or default)
        bar.outline.set_visible(False)
        return _to_svg(fig, salt)


def histogram(
    values: Sequence[float] | np.ndarray[Any, Any],
    *,
    title: str,
    xlabel: str,
    flagged: Sequence[bool] | np.ndarray[Any, Any] | None = None,
    bins: int = 25,
    value_range: tuple[float, float] = (0.0, 1.0),
    salt: str = "hist",
) -> str:
    """A histogram; with `flagged`, the flagged values are stacked in a second colour.
    The values are binned first (`bin_counts`), then drawn as `binned_histogram` draws
    the counts: the same plot as matplotlib's ``hist`` of the values."""
    counts, flagged_counts = bin_counts(values, flagged=flagged, bins=bins,
                                        value_range=value_range)
    return binned_histogram(counts, flagged_counts, title=title, xlabel=xlabel,
                            value_range=value_range, salt=salt)


def binned_histogram(
    counts: Sequence[int],
    flagged_counts: Sequence[int] | None = None,
    *,
    title: str,
    xlabel: str,
    value_range: tuple[float, float] = (0.0, 1.0),
    salt: str = "hist",
) -> str:
    """`histogram` of values already binned (`bin_counts`): `counts` per equal bin over
    `value_range`; with `flagged_counts`, those stacked in a second colour. The bars are
    the ones matplotlib's ``hist`` of the values draws (same places, colours, edges,
    legend and axes), drawn as one collection per colour (`_bars`)."""
    n = len(counts)
    edges = np.linspace(value_range[0], value_range[1], n + 1)
    series = [(np.asarray(counts, dtype=np.float64), BAR_COLOR, "not flagged")]
    if flagged_counts is not None:
        series.append((np.asarray(flagged_counts, dtype=np.float64), FAIL_COLOR,
                       "flagged as issue"))
    with matplotlib.rc_context(_style()):
        fig = _figure(2.4)
        ax = fig.add_subplot()
        bottom = np.zeros(n)
        handles = []
        for k, (heights, color, label) in enumerate(series):
            # as hist: only the lowest bars' bases are sticky
            handles.append(_bars(ax, edges[:-1], np.diff(edges), bottom, heights, color,
                                 label=label, edgecolor="white", linewidth=0.5,
                                 sticky=k == 0))
            bottom = bottom + heights
        if flagged_counts is not None:
            ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("rows")
        ax.grid(axis="y")
        ax.set_axisbelow(True)
        return _to_svg(fig, salt)


def _bars(ax: Axes, lefts: Any, widths: Any, bottoms: Any, heights: Any,
          color: str | Sequence[str], *, label: str = "", edgecolor: str = "none",
          linewidth: float | None = None, horizontal: bool = False,
          sticky: bool = True) -> Rectangle:
    """Bars as matplotlib's ``bar`` (``barh`` with `horizontal`) draws them, in one
    collection instead of one patch per bar: the same corners in the same order, the
    same fill, edge and mitred joins, clipped to the axes, counted in its data limits,
    and each bar's base a sticky edge of the autoscaling as ``bar`` makes it (unless not
    `sticky`). Drawing an axes costs per artist: a 2 x 25-bin histogram is 2 artists
    here, 50 patches as ``bar`` draws it.

    Returns a patch with the bars' style and `label`, for a legend (``bar`` labels its
    first patch)."""
    x0, y0, w, h = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                         for v in (lefts, bottoms, widths, heights)))
    first = color if isinstance(color, str) else (color[0] if len(color) else BAR_COLOR)
    style: dict[str, Any] = {"edgecolor": edgecolor, "linewidth": linewidth}
    bases = (x0 if horizontal else y0).tolist() if sticky else []
    if x0.size == 1:  # matplotlib draws a collection of one as a marker: bar's own patch
        bar = (ax.barh(y0, w, h, x0, align="edge", color=first, **style) if horizontal
               else ax.bar(x0, h, w, y0, align="edge", color=first, **style))[0]
        (bar.sticky_edges.x if horizontal else bar.sticky_edges.y)[:] = bases
    elif x0.size:  # (an empty collection would still write an empty group)
        x1, y1 = x0 + w, y0 + h
        corners = np.stack([np.stack(c, axis=1) for c in
                            ((x0, y0), (x1, y0), (x1, y1), (x0, y1))], axis=1)
        bars = PolyCollection(list(corners), closed=True, facecolors=color,
                              edgecolors=edgecolor, linewidths=linewidth, joinstyle="miter")
        (bars.sticky_edges.x if horizontal else bars.sticky_edges.y)[:] = bases
        ax.add_collection(bars, autolim=True)
        ax.autoscale_view()  # as bar (matplotlib < 3.11 only counts a collection's limits)
    return Rectangle((0.0, 0.0), 1.0, 1.0, facecolor=first, label=label, **style)


def stacked_bars(
    categories: Sequence[object],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str = "rows",
    share: bool = False,
    salt: str = "stacked",
) -> str:
    """Vertical bars per category (e.g. split), stacked by series (e.g. class), legend right.
    With `share`, each bar is normalised to 100% (the class mix of each split)."""
    x = np.arange(len(categories))
    data = {k: np.asarray(v, dtype=np.float64) for k, v in series.items()}
    if share and data:
        totals = np.sum(list(data.values()), axis=0)
        data = {k: np.divide(v, totals, out=np.zeros_like(v), where=totals > 0)
                for k, v in data.items()}
    with matplotlib.rc_context(_style()):
        fig = _figure(2.6)
        ax = fig.add_subplot()
        bottom = np.zeros(len(categories))
        handles = []
        for k, (name, v) in enumerate(data.items()):
            handles.append(_bars(ax, x - 0.3, 0.6, bottom, v, COLORS[k % len(COLORS)],
                                 label=short(name, 20)))
            if share:
                for xi, b, h in zip(x, bottom, v, strict=True):
                    if h >= 0.06:
                        ax.text(float(xi), b + h / 2, f"{h:.0%}", ha="center", va="center",
                                fontsize=7.5, color="white")
            bottom += v
        if not share:
            for xi, total in zip(x, bottom, strict=True):
                ax.annotate(_fmt(total), (xi, total), xytext=(0, 2), textcoords="offset points",
                            ha="center", fontsize=8)
        ax.set_xticks(x, [short(c, 16) for c in categories])
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if share:
            ax.set_ylim(0, 1)
            ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
        else:
            ax.set_ylim(0, max(float(bottom.max()) * 1.12 if bottom.size else 1.0, 1.0))
        ax.grid(axis="y")
        ax.set_axisbelow(True)
        if len(series) <= 12:  # (as bar's: no entry for a label starting with "_")
            ax.legend(handles=[h for h in handles if not str(h.get_label()).startswith("_")],
                      frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _to_svg(fig, salt)


def line_plot(
    runs: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    passed: Sequence[bool | None] | None = None,
    percent: bool = False,
    salt: str = "line",
) -> str:
    """A small trend line over runs (oldest left); the newest point is labelled. With
    `passed`, points are green (gate passed), red (failed) or grey (unknown)."""
    vals = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    x = np.arange(len(runs))
    with matplotlib.rc_context(_style()):
        fig = _figure(1.7, width=3.6)
        ax = fig.add_subplot()
        ax.plot(x, vals, color="#57606a", linewidth=1.2, zorder=1)
        if passed is None:
            point_colors = [BAR_COLOR] * len(runs)
        else:
            point_colors = [PASS_COLOR if p else FAIL_COLOR if p is not None else "#8c959f"
                            for p in passed]
        ax.scatter(x, vals, c=point_colors, s=14, zorder=2)
        finite = np.flatnonzero(np.isfinite(vals))
        if finite.size:
            last = int(finite[-1])
            label = _pct(float(vals[last])) if percent else _fmt(float(vals[last]))
            ax.annotate(label, (x[last], vals[last]), xytext=(4, 4), textcoords="offset points",
                        fontsize=8, fontweight="bold")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_xlim(-0.5, max(len(runs) - 0.5, 0.5) + 0.6)
        ax.grid(axis="y")
        ax.set_axisbelow(True)
        ax.margins(y=0.25)
        if percent:
            ax.yaxis.set_major_formatter(_percent_ticks())
            if finite.size and float(np.nanmin(vals)) >= 0:
                ax.set_ylim(bottom=0)
        return _to_svg(fig, salt)



def sparkline(
    values: Sequence[float | None],
    *,
    passed: Sequence[bool | None] | None = None,
    percent: bool = False,
    salt: str = "spark",
) -> str:
    """A tiny trend line for a table cell (oldest left): no axes, the points coloured by
    the gate verdict as in `line_plot`, the newest value written at the right."""
    vals = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    x = np.arange(len(vals))
    with matplotlib.rc_context(_style()):
        fig = Figure(figsize=(1.9, 0.42))
        ax = fig.add_axes((0.02, 0.12, 0.62, 0.76))
        ax.plot(x, vals, color="#57606a", linewidth=1.0)
        colors = ([BAR_COLOR] * len(vals) if passed is None else
                  [PASS_COLOR if p else FAIL_COLOR if p is not None else "#8c959f"
                   for p in passed])
        ax.scatter(x, vals, c=colors, s=7, zorder=2)
        ax.set_axis_off()
        ax.set_xlim(-0.5, max(len(vals) - 0.5, 0.5))
        ax.margins(y=0.3)
        finite = np.flatnonzero(np.isfinite(vals))
        if finite.size:
            last = float(vals[int(finite[-1])])
            fig.text(0.68, 0.5, _pct(last) if percent else _fmt(last), va="center",
                     fontsize=8, color="#24292f")
        return _to_svg(fig, salt, css_class="spark", tight=False)


def interval_plot(
    labels: Sequence[object],
    values: Sequence[float],
    intervals: Sequence[tuple[float | None, float | None]],
    *,
    title: str,
    reference: float | None = None,
    reference_label: str = "",
    salt: str = "interval",
) -> str:
    """Point estimates with confidence intervals where known (a forest plot), on a -1..1
    agreement scale that widens if a value falls outside it; `reference` is a dashed line."""
    n = len(labels)
    vals = np.asarray(values, dtype=np.float64)
    with matplotlib.rc_context(_style()):
        fig = _figure(0.3 * n + 0.8)
        ax = fig.add_subplot()
        y = np.arange(n)
        for yi, v, (lo, hi) in zip(y, vals, intervals, strict=True):
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [yi, yi], color=BAR_COLOR, linewidth=2.5, alpha=0.35,
                        solid_capstyle="butt")
            ax.annotate(_fmt(float(v)), (v, yi), xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=8)
        ax.scatter(vals, y, color=BAR_COLOR, s=22, zorder=3)
        ax.set_yticks(y, [short(v) for v in labels])
        ax.invert_yaxis()
        low = min(0.0, float(np.nanmin(vals)) - 0.05) if n else 0.0
        ax.set_xlim(low, 1.02)
        ax.set_ylim(n - 0.4, -0.8)
        if reference is not None:
            ax.axvline(reference, color=FAIL_COLOR, linestyle="--", linewidth=1)
            if reference_label:
                ax.annotate(reference_label, (reference, 0.0), xycoords=("data", "axes fraction"),
                            xytext=(3, 3), textcoords="offset points", fontsize=7.5,
                            color=FAIL_COLOR)
        ax.set_title(title)
        ax.grid(axis="x")
        ax.set_axisbelow(True)
        return _to_svg(fig, salt)
