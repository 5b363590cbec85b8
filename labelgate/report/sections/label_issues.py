"""The ``label_issues`` section: the figures, how the issues were found, the noise
matrix, quality and issue rate per class, the label-quality histogram and the most
suspicious rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from labelgate.report.view import (
    Cell,
    Part,
    Plot,
    Section,
    Table,
    _as_rows,
    _facts,
    _first,
    _float,
    _matrix,
    _plot,
    _records,
    excerpt,
    fmt_num,
    fmt_pct,
)
from labelgate.stages.label_issues.detect import JOINT_COUNTED_FILTERS


def label_issues_view(li: Mapping[str, Any], frame: pl.DataFrame | None = None) -> Section:
    """Label issues: the figures, how they were found, plots, per class, noise, top rows.

    Parameters
    ----------
    li
        report.json's ``label_issues`` section.
    frame
        The per-row label-issue table (``label_quality``, optionally ``is_label_issue``)
        for the quality histogram; None: no histogram.

    Returns
    -------
    Section
        The section ``label-issues``.
    """
    texts, used = _label_issues_texts(li)
    sec = Section("label-issues", "Label issues")
    sec.add(Part("facts", facts=[
        ("method", fmt_num(li.get("method")), ""),
        *([("cleanlab path", fmt_num(li.get("path")), "")] if li.get("path") else []),
        ("rows flagged", fmt_num(li.get("count")), ""),
        ("issue rate", fmt_pct(_float(li.get("rate"))), ""),
        ("health score", fmt_num(_float(li.get("health_score"))), ""),
        *_facts(li, skip=("method", "path", "count", "rate", "health_score", *used)),
    ]))
    for text in texts:
        sec.add(Part("text", text=text))
    figs = _label_issues_plots(li, frame)
    if figs:
        sec.add(Part("plots", plots=figs))
    for table in _label_issue_tables(li):
        sec.table(table)
    return sec


def _label_issue_tables(li: Mapping[str, Any]) -> list[Table | None]:
    """Per class, the noise matrix's largest cells, CROWDLAB vs the agreement stage, and
    the most suspicious rows."""
    top = _as_rows(li.get("top"))
    return [
        _records(li.get("per_class"),
                 ["class", "rows", "issues", "issue rate", "mean label quality"],
                 lambda c: [c.get("class"), c.get("rows"), c.get("issues"),
                            Cell(fmt_pct(c.get("issue_rate"))),
                            _float(c.get("mean_label_quality"))],
                 numeric={1, 2, 3, 4}),
        _noise_table(li),
        _records(li.get("consensus_comparison"), ["vs", "items", "differ", "share"],
                 lambda c: [c.get("b"), c.get("items"), c.get("differ"),
                            Cell(fmt_pct(c.get("share")))],
                 caption="CROWDLAB consensus vs the agreement stage's", numeric={1, 2, 3}),
        _records(top, ["id", "given", "suggested", "quality", "text"],
                 lambda r: [Cell(excerpt(r.get("id"), 40), "mono"),
                            _first(r, "given", "given_label"),
                            _first(r, "suggested", "suggested_label"),
                            _float(_first(r, "quality", "label_quality")),
                            Cell(excerpt(r.get("text")), "text", excerpt(r.get("text"), 2000))],
                 caption=f"Top {len(top)} suspicious rows (lowest label quality)",
                 numeric={3}),
    ]


def _label_issues_texts(li: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    """Sentences on the model, the filter, the second pass and reuse; the keys they use."""
    texts: list[str] = []
    used: set[str] = set()
    if li.get("model"):
        weights = f" ({li['embedding_model']})" if li.get("embedding_model") else ""
        texts.append(f"model (out-of-fold probabilities): {li['model']}{weights}")
        used |= {"model", "embedding_model"}
    if li.get("filter_by"):
        # only these filters take their number of flags from the joint
        counted = str(li["filter_by"]).removesuffix(" (batched)") in JOINT_COUNTED_FILTERS
        how = (f", counted by the {li['joint_calibration']} joint"
               if counted and li.get("joint_calibration") else "")
        texts.append(f"flags: filter {li['filter_by']}{how}")
        used |= {"filter_by", "joint_calibration"}
    if li.get("passes") == 2:
        texts.append(f"second pass: models trained again without {li.get('left_out')} rows "
                     "the first pass flagged, every row scored again out of fold")
        used |= {"passes", "left_out"}
    if li.get("reused_from"):
        texts.append(f"reused from run {li['reused_from']} (same rows, labels, settings and "
                     "model)")
        used.add("reused_from")
    return texts, used


def _noise_keys(cell: Mapping[str, Any]) -> tuple[str, str, str]:
    """(given, suggested-or-true, value) keys of a noise-matrix cell, in either shape."""
    given = next((k for k in ("given", "given_label") if k in cell), "given")
    other = next((k for k in ("suggested", "suggested_label", "true_label") if k in cell),
                 "suggested")
    value = next((k for k in ("rows", "count", "joint") if k in cell), "rows")
    return given, other, value


def _label_issues_plots(li: Mapping[str, Any], frame: pl.DataFrame | None) -> list[Plot]:
    """Noise matrix, quality and issue rate per class, and the label-quality histogram."""
    figs: list[Plot] = []
    noise = _as_rows(li.get("noise_matrix"))
    if noise:
        given, other, value = _noise_keys(noise[0])
        rl, cl, m = _matrix(noise, given, other, value)
        what = "estimated joint share" if value == "joint" else "rows"
        figs.append(_plot(
            "heatmap", rl, cl, m, title=f"Noise matrix ({what})",
            xlabel="true label (estimated)" if other == "true_label" else "suggested label",
            ylabel="given label", salt="noise"))
    per_class = _as_rows(li.get("per_class"))
    if per_class:
        names = [c.get("class") for c in per_class]
        figs.append(_plot(
            "bar_chart", names, [_float(c.get("mean_label_quality")) for c in per_class],
            title="Mean label quality per class", xlabel="mean label quality (0–1)",
            xlim=(0.0, 1.1), salt="li-quality"))
        figs.append(_plot(
            "bar_chart", names, [_float(c.get("issue_rate")) for c in per_class],
            title="Issue rate per class", percent=True, salt="li-rate", fail_colors=True))
    if frame is not None and "label_quality" in frame.columns and frame.height:
        flagged = (frame.get_column("is_label_issue").fill_null(False).to_numpy()
                   if "is_label_issue" in frame.columns else None)
        figs.append(_plot(
            "histogram",
            frame.get_column("label_quality").cast(pl.Float64).fill_null(float("nan"))
            .to_numpy(),
            flagged=flagged, title=f"Label quality ({frame.height:,} rows)",
            xlabel="label quality (low = likely mislabeled)", salt="li-hist"))
    return figs


def _noise_table(li: Mapping[str, Any]) -> Table | None:
    """The largest off-diagonal cells of the noise matrix (the heatmap, as numbers)."""
    noise = _as_rows(li.get("noise_matrix"))
    if not noise:
        return None
    given, other, value = _noise_keys(noise[0])
    off = sorted((c for c in noise
                  if c.get(given) != c.get(other) and (_float(c.get(value)) or 0.0) > 0),
                 key=lambda c: -(_float(c.get(value)) or 0.0))[:6]
    if not off:
        return None
    share = value == "joint"
    return Table(
        caption="Estimated noise (given → likely "
                + ("true, share of all rows)" if share else "suggested, rows)"),
        headers=["given", "likely true" if other == "true_label" else "suggested",
                 "share" if share else "rows"],
        rows=[[Cell(fmt_num(c.get(given))), Cell(fmt_num(c.get(other))),
               Cell(fmt_pct(c.get(value)) if share else fmt_num(c.get(value)))] for c in off],
        numeric=frozenset({2}),
    )
