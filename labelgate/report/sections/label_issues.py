"""The ``label_issues`` section: the figures, how the issues were found, the noise
matrix, quality and issue rate per class, the label-quality histogram and the most
suspicious rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from labelgate.report.binning import bin_counts
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
from labelgate.stages.label_issues.options import JOINT_COUNTED_FILTERS


def label_issues_view(
    li: Mapping[str, Any],
    frame: pl.DataFrame | None = None,
    *,
    splits: Mapping[str, Any] | None = None,
    published: bool = False,
) -> Section:
    """Label issues: one sentence on what became of the flagged rows, the figures, the
    settings (folded), plots, per class, noise, top rows.

    Parameters
    ----------
    li
        report.json's ``label_issues`` section.
    frame
        The per-row label-issue table (``label_quality``, optionally ``is_label_issue``)
        for the quality histogram; None: no histogram.
    splits
        report.json's ``splits`` section (its ``policy``, ``flagged_rows`` and
        ``excluded``), for what became of the flagged rows; None: no splits stage ran.
    published
        Whether the run published a version (report.json has ``published``).

    Returns
    -------
    Section
        The section ``label-issues``.
    """
    settings, used = _settings(li)
    sec = Section("label-issues", "Label issues")
    sec.add(Part("text", text=flag_outcome_text(li, splits, published=published)))
    sec.add(Part("facts", facts=[
        ("rows flagged", fmt_num(li.get("count")), ""),
        ("issue rate", fmt_pct(_float(li.get("rate"))), ""),
        ("health score", fmt_num(_float(li.get("health_score"))), ""),
        *_facts(li, skip=("count", "rate", "health_score", *used)),
    ]))
    if li.get("reused_from"):
        sec.add(Part("text", text=f"reused from run {li['reused_from']} (same rows, labels, "
                                  "settings and model)"))
    elif isinstance(li.get("refresh"), Mapping):
        sec.add(Part("text", text=refresh_text(li["refresh"])))
    if settings is not None:
        sec.add(settings)
    figs = _label_issues_plots(li, frame)
    if figs:
        sec.add(Part("plots", plots=figs))
    for table in _label_issue_tables(li):
        sec.table(table)
    return sec


def flag_outcome_text(li: Mapping[str, Any], splits: Mapping[str, Any] | None, *,
                      published: bool = False) -> str:
    """What became of the flagged rows, in one sentence, by the splits' flag policy.

    Parameters
    ----------
    li
        report.json's ``label_issues`` section (``count``).
    splits
        report.json's ``splits`` section: ``policy`` (``splits.flagged``: drop,
        drop_from_test, relabel or keep), ``flagged_rows`` (label issues and rows of
        conflicting duplicate clusters) and ``excluded`` (rows per exclusion policy);
        None: no splits stage ran.
    published
        Whether the kept rows were published this run.

    Returns
    -------
    str
        E.g. ``"212 rows flagged as probable label errors: 9 dropped from test, 203
        published with a flag column"``; only the clauses the policy makes true.
    """
    n = _count(li.get("count"))
    head = (f"{n:,} row flagged as a probable label error" if n == 1
            else f"{n:,} rows flagged as probable label errors")
    if splits is None:
        return head + ": none dropped or relabeled (no splits stage ran)"
    policy = str(splits.get("policy") or "")
    flagged = _count(splits.get("flagged_rows", n))
    out = sum(_count(e.get("rows")) for e in _as_rows(splits.get("excluded"))
              if e.get("policy") == policy)
    kept = max(flagged - out, 0)
    flag = f"{'published' if published else 'kept in the splits'} with a flag column"
    clauses = {
        "drop": [f"{out:,} dropped"],
        "drop_from_test": [f"{out:,} dropped from test", f"{kept:,} {flag}"],
        "relabel": [f"{kept:,} relabeled", f"{out:,} dropped (no confident suggested label)"],
        "keep": [f"{kept:,} {flag}"],
    }.get(policy)
    if clauses is None:
        return head
    if flagged != n:  # conflicting duplicate clusters are flagged too (or reviewed unflagged)
        head += f" ({flagged:,} flagged rows in all, with conflicting duplicates)"
    return f"{head}: {', '.join(clauses)}"


def refresh_text(refresh: Mapping[str, Any]) -> str:
    """Which rows were scored by which models, from the section's ``refresh`` account.

    Parameters
    ----------
    refresh
        ``mode`` (full | incremental), ``reason``, ``models_from`` (the run whose fold
        models scored the rows), ``trained_rows``, ``kept_rows``, ``new_rows``,
        ``new_share``.

    Returns
    -------
    str
        One sentence.
    """
    run = refresh.get("models_from")
    if refresh.get("mode") != "incremental":
        return (f"every row scored out of fold by this run's fold models, trained on "
                f"{_count(refresh.get('trained_rows')):,} rows ({refresh.get('reason')})")
    share = fmt_pct(_float(refresh.get("new_share")))
    return (f"{_count(refresh.get('kept_rows')):,} rows keep the scores they had "
            f"(out of fold, run {run}'s models); {_count(refresh.get('new_rows')):,} new rows "
            f"scored by run {run}'s fold models, which never saw them ({share} of the rows "
            f"are new since those models trained on {_count(refresh.get('trained_rows')):,} "
            "rows; label_issues.refresh says when to train again)")


def _count(value: object) -> int:
    """A count from report.json (missing or not a number: 0)."""
    f = _float(value)
    return int(f) if f is not None else 0


# how each cleanlab filter picks the flagged rows, in plain words
_FILTERS = {
    "both": "rows that are among the least likely of their given class and of their "
            "(given, likely true) pair",
    "prune_by_class": "in each given class, the rows least likely to have that label",
    "prune_by_noise_rate": "for each (given, likely true) pair, the rows most likely to "
                           "belong to the other class",
    "confident_learning": "rows confidently counted under another class than their own",
    "predicted_neq_given": "rows whose predicted class is not their given label",
    "low_self_confidence": "the rows with the lowest probability for their given label",
    "low_normalized_margin": "the rows whose given label trails another class the most",
    "both, ranked": "as many rows as class and pair pruning (both) picks, taken in order of "
                    "lowest probability for their given label",
}
_CALIBRATIONS = {
    "per_class": "cleanlab's confident counts, corrected per true class",
    "posterior": "every row's probability of each true class, summed",
    "cleanlab": "cleanlab's confident counts, scaled to the dataset",
}
_METHODS = {
    "cross_validated": "a model trained here, each row scored by a model that did not see it",
    "predictions": "the predicted probabilities supplied with the data",
    "multiannotator": "the annotators' labels (CROWDLAB)",
}


def _settings(li: Mapping[str, Any]) -> tuple[Part | None, set[str]]:
    """How the flags were found, in plain words, as a folded part; the keys it shows."""
    rows: list[tuple[str, str]] = []
    used = {"method", "path", "model", "embedding_model", "folds", "filter_by",
            "joint_calibration", "passes", "left_out", "reused_from", "refresh"}
    if li.get("method"):
        how = _METHODS.get(str(li["method"]), str(li["method"]))
        rows.append(("how rows were scored", f"{how} ({li['method']})"))
    if li.get("model"):
        weights = f" with {li['embedding_model']}" if li.get("embedding_model") else ""
        rows.append(("model", f"{li['model']}{weights}"))
    if li.get("folds"):
        rows.append(("folds", fmt_num(li["folds"])))
    if li.get("filter_by"):
        name = str(li["filter_by"]).removesuffix(" (batched)")
        rows.append(("how flags are chosen", f"{_FILTERS.get(name, name)} "
                                             f"(cleanlab filter_by {li['filter_by']})"))
        if name.removesuffix(", ranked") in JOINT_COUNTED_FILTERS and li.get(
                "joint_calibration"):
            cal = str(li["joint_calibration"])
            rows.append(("how many rows are flagged", "as many as estimated from "
                         f"{_CALIBRATIONS.get(cal, cal)} ({cal})"))
    if li.get("passes") == 2:
        rows.append(("second pass", f"models trained again without {li.get('left_out')} rows "
                                    "the first pass flagged, every row scored again"))
    elif li.get("passes") == 1:
        rows.append(("passes", "one"))
    if li.get("path"):
        rows.append(("cleanlab path", str(li["path"])))
    if not rows:
        return None, used
    return Part("details", text="How the flags were found",
                facts=[(k, v, "") for k, v in rows]), used


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
        _records(top, ["id", "given", "suggested", "quality", "why", "text"],
                 lambda r: [Cell(excerpt(r.get("id"), 40), "mono"),
                            _first(r, "given", "given_label"),
                            _first(r, "suggested", "suggested_label"),
                            _float(_first(r, "quality", "label_quality")),
                            r.get("why") or "flagged",
                            Cell(excerpt(r.get("text")), "text", excerpt(r.get("text"), 2000))],
                 caption=f"Top {len(top)} suspicious rows: the flagged ones, then the lowest "
                 "label quality among the rest (worth a look)",
                 numeric={3}),
    ]


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
        joint = value == "joint"
        figs.append(_plot(
            "heatmap", rl, cl, m,
            title="Noise matrix (estimated joint share)" if joint else "Noise matrix (rows)",
            xlabel="true label (estimated)" if other == "true_label" else "suggested label",
            ylabel="given label", shares=joint,
            scale_label=("estimated share of all rows" if joint
                         else "share of the given label's rows"),
            salt="noise"))
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
        # binned here: the plot's inputs are 2 x 25 counts, not a million values (cheap
        # to hash for the plot cache, and nothing to sort when it is drawn)
        counts, flagged_counts = bin_counts(
            frame.get_column("label_quality").cast(pl.Float64).fill_null(float("nan"))
            .to_numpy(), flagged=flagged)
        figs.append(_plot(
            "binned_histogram", counts, flagged_counts,
            title=f"Label quality ({frame.height:,} rows)",
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
