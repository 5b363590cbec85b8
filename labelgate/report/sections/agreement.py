"""The ``agreement`` section: annotator agreement coefficients (with Krippendorff's α's
bootstrap interval), per class, the most confused label pairs, annotators, annotator pairs
and the consensus methods compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelgate.report.view import (
    TABLE_ROWS,
    Cell,
    Part,
    Plot,
    Section,
    Table,
    _as_rows,
    _float,
    _mapping,
    _matrix,
    _plot,
    _records,
    consensus_applied_text,
    excerpt,
    fmt_num,
    fmt_pct,
)

COEFFICIENTS = (  # agreement coefficients shown in reports: (metric key, name)
    ("krippendorff_alpha", "Krippendorff's α"),
    ("percent_agreement", "percent agreement"),
    ("fleiss_kappa", "Fleiss' κ"),
    ("fleiss_kappa_generalized", "Fleiss' κ (unequal counts)"),
    ("mean_cohen_kappa", "mean Cohen's κ (pairs)"),
    ("gwet_ac1", "Gwet's AC1"),
    ("gwet_ac2", "Gwet's AC2 (weighted)"),
)


def agreement_view(ag: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> Section:
    """Annotator agreement: coefficients, per class, confusion, annotators, consensus.

    Parameters
    ----------
    ag
        report.json's ``agreement`` section.
    gate
        report.json's ``gate``: its Krippendorff's α threshold, if any, marks the plot and
        the coefficient row.

    Returns
    -------
    Section
        The section ``agreement``.
    """
    m: Mapping[str, Any] = ag.get("metrics") or {}
    alpha_min = next((_float(c.get("threshold")) for c in _as_rows((gate or {}).get("checks"))
                      if str(c.get("metric", "")).endswith("krippendorff_alpha")), None)
    sec = Section("agreement", "Agreement")
    sec.add(Part("text", text=_agreement_text(ag, m)))
    figs = _agreement_plots(ag, m, alpha_min)
    if figs:
        sec.add(Part("plots", plots=figs))
    for table in _agreement_tables(ag, m, alpha_min):
        sec.table(table)
    gold = [(name, _float(m.get(key))) for key, name in (
        ("majority_gold_accuracy", "majority"), ("dawid_skene_gold_accuracy", "Dawid-Skene"))]
    if any(v is not None for _, v in gold):
        sec.add(Part("facts", facts=[
            (f"gold accuracy, {name} consensus", fmt_pct(v, 1), "") for name, v in gold
        ] + [("gold items", fmt_num(m.get("n_gold_items_labelled")), "")]))
    notes = [str(n) for n in ag.get("notes") or []]
    if notes:
        sec.add(Part("notes", notes=notes))
    return sec


def _agreement_text(ag: Mapping[str, Any], m: Mapping[str, Any]) -> str:
    """The headline sentence: labels, items, annotators, and the training label."""
    method = ag.get("consensus_method")
    training = (f" Training label: {method} consensus (recorded in the consensus table; "
                f"{consensus_applied_text(ag).replace('`', '')})." if method else "")
    return (f"{fmt_num(m.get('n_labels'))} labels on {fmt_num(m.get('n_items'))} items by "
            f"{fmt_num(m.get('n_annotators'))} annotators (level {ag.get('level', '?')}; "
            f"{fmt_num(m.get('n_items_multi_label'))} items with two or more labels; "
            f"{fmt_num(m.get('n_categories'))} categories)." + training)


def _agreement_plots(ag: Mapping[str, Any], m: Mapping[str, Any],
                     alpha_min: float | None) -> list[Plot]:
    """Coefficients with the α interval, specific agreement per class, confusion heatmap."""
    figs: list[Plot] = []
    lo, hi = _float(m.get("krippendorff_alpha_ci_low")), _float(m.get("krippendorff_alpha_ci_high"))
    shown = [(name, v, key) for key, name in COEFFICIENTS
             if (v := _float(m.get(key))) is not None]
    if shown:
        figs.append(_plot(
            "interval_plot", [n for n, _, _ in shown], [v for _, v, _ in shown],
            [(lo, hi) if k == "krippendorff_alpha" else (None, None) for _, _, k in shown],
            title="Agreement coefficients", reference=alpha_min,
            reference_label=f"gate: α ≥ {fmt_num(alpha_min)}", salt="coef"))
    per_class = _as_rows(ag.get("per_class"))
    if per_class:
        figs.append(_plot(
            "bar_chart", [c.get("category") for c in per_class],
            [_float(c.get("specific_agreement")) for c in per_class],
            title="Specific agreement per class", xlabel="agreeing pairs / pairs with the class",
            xlim=(0.0, 1.1), salt="ag-class"))
    confusion = _as_rows(ag.get("confusion"))
    if confusion:
        rl, cl, mat = _matrix(confusion, "label_a", "label_b", "n_pairs")
        figs.append(_plot("heatmap", rl, cl, mat, title="Annotator confusion (label pairs)",
                          xlabel="label b", ylabel="label a", salt="ag-conf"))
    return figs


def _coefficient_table(ag: Mapping[str, Any], m: Mapping[str, Any],
                       alpha_min: float | None) -> Table:
    """Every coefficient; Krippendorff's α with its bootstrap interval, marked if below
    the gate."""
    lo, hi = _float(m.get("krippendorff_alpha_ci_low")), _float(m.get("krippendorff_alpha_ci_high"))
    settings = _mapping(ag.get("settings"))
    boot = _mapping(settings.get("bootstrap")) if settings is not None else None
    confidence = (_float(boot.get("confidence")) if boot is not None else None) or 0.95
    ci = (f"{fmt_num(lo)} – {fmt_num(hi)} ({fmt_num(m.get('krippendorff_alpha_n_boot'))} "
          "resamples)" if lo is not None else "")
    coef = [(name, _float(m.get(key)), key) for key, name in COEFFICIENTS]
    return Table(
        headers=["coefficient", "value", f"{confidence:.0%} bootstrap interval"],
        rows=[[Cell(name), Cell(fmt_num(v)), Cell(ci if key == "krippendorff_alpha" else "")]
              for name, v, key in coef],
        numeric=frozenset({1}),
        row_classes=["bad" if key == "krippendorff_alpha" and alpha_min is not None
                     and v is not None and v < alpha_min else "" for _, v, key in coef],
    )


def _agreement_tables(ag: Mapping[str, Any], m: Mapping[str, Any],
                      alpha_min: float | None) -> list[Table | None]:
    """Coefficients, per class, the most confused pairs, annotators, annotator pairs and
    the consensus methods compared."""
    return [
        _coefficient_table(ag, m, alpha_min),
        _records(ag.get("per_class"),
                 ["category", "labels", "share", "majority items", "specific agreement"],
                 lambda c: [c.get("category"), c.get("n_labels"),
                            Cell(fmt_pct(c.get("share"), 1)), c.get("n_majority"),
                            _float(c.get("specific_agreement"))],
                 caption="Per class", numeric={1, 2, 3, 4}),
        _records(_most_confused(ag), ["label a", "label b", "pairs"],
                 lambda c: [c.get("label_a"), c.get("label_b"), c.get("n_pairs")],
                 caption="Most confused category pairs (label pairs on the same item)",
                 numeric={2}),
        _annotator_table(ag),
        _records(ag.get("pairs"),
                 ["annotator a", "annotator b", "shared items", "percent agreement",
                  "Cohen's κ"],
                 lambda p: [Cell(excerpt(p.get("annotator_a"), 40), "mono"),
                            Cell(excerpt(p.get("annotator_b"), 40), "mono"), p.get("n_shared"),
                            _float(p.get("percent_agreement")), _float(p.get("cohen_kappa"))],
                 caption="Annotator pairs", numeric={2, 3, 4}, limit=200, collapsed=True),
        _records(ag.get("consensus_comparison"),
                 ["method a", "method b", "items", "differ", "share differ"],
                 lambda c: [c.get("method_a"), c.get("method_b"), c.get("n_items"),
                            c.get("n_differ"), Cell(fmt_pct(c.get("share_differ")))],
                 caption="Consensus methods compared", numeric={2, 3, 4}),
    ]


def _most_confused(ag: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ten most confused category pairs; the counts are symmetric, (a, b) = (b, a),
    so each unordered pair is listed once, as (smaller, larger)."""
    return sorted(
        (c for c in _as_rows(ag.get("confusion"))
         if str(c.get("label_a")) < str(c.get("label_b")) and c.get("n_pairs")),
        key=lambda c: -int(c.get("n_pairs") or 0),
    )[:10]


def _annotator_table(ag: Mapping[str, Any]) -> Table | None:
    """Annotators, flagged first, then by lowest consensus agreement."""
    annotators = sorted(_as_rows(ag.get("annotators")),
                        key=lambda a: (not a.get("flagged"),
                                       _float(a.get("consensus_agreement")) or 0.0))
    with_gold = any(a.get("n_gold") for a in annotators)
    n_flag = sum(bool(a.get("flagged")) for a in annotators)
    return _records(
        annotators,
        ["annotator", "labels", "consensus agreement", "mean Cohen's κ", "Dawid-Skene accuracy",
         *(["gold items", "gold accuracy"] if with_gold else []), "flag"],
        lambda a: [Cell(excerpt(a.get("annotator"), 40), "mono"), a.get("n_labels"),
                   _float(a.get("consensus_agreement")), _float(a.get("mean_cohen_kappa")),
                   _float(a.get("dawid_skene_accuracy")),
                   *([a.get("n_gold"), _float(a.get("gold_accuracy"))] if with_gold else []),
                   Cell(str(a.get("flag_reasons") or "") if a.get("flagged") else "", "fail")],
        caption=f"Annotators ({len(annotators)}, {n_flag} flagged; flagged first, then "
                "lowest consensus agreement)",
        numeric=range(1, 7 if with_gold else 5), limit=TABLE_ROWS,
        row_class=lambda a: "bad" if a.get("flagged") else "")
