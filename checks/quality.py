"""Dataset-level quality metrics the gate reads (one flat name -> number mapping)."""

from __future__ import annotations

import polars as pl

from checks.contract import ContractResult


def class_counts(
    valid: pl.DataFrame, *, label_column: str, classes_of: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Valid rows per label class, largest first (ties by label). ``classes_of``: a frame
    (e.g. the rows before exclusions) whose every class is listed, with 0 rows if ``valid``
    has none of it: a class excluded entirely must fail min_rows_per_class, not vanish."""
    label = pl.col(label_column).cast(pl.String).alias("label")
    counts = valid.group_by(label).agg(pl.len().alias("rows"))
    if classes_of is not None:
        every = classes_of.select(label).unique()
        counts = every.join(counts, on="label", how="left", nulls_equal=True).with_columns(
            pl.col("rows").fill_null(0).cast(pl.UInt32)
        )
    return counts.sort(["rows", "label"], descending=[True, False])


def contract_metrics(
    result: ContractResult, *, label_column: str, classes_of: pl.DataFrame | None = None
) -> dict[str, float]:
    """Row arithmetic and class balance after the contract (``classes_of``: see
    `class_counts`)."""
    counts = class_counts(result.valid, label_column=label_column, classes_of=classes_of)
    rows_input = result.rows_input
    return {
        "rows_input": float(rows_input),
        "rows_valid": float(result.rows_valid),
        "rows_quarantined": float(result.rows_quarantined),
        "rows_excluded": 0.0,
        "quarantine_rate": result.rows_quarantined / rows_input if rows_input else 0.0,
        "n_classes": float(counts.height),
        # counts is sorted largest first, so the last row is the smallest class
        "min_rows_per_class": float(counts.get_column("rows")[-1]) if counts.height else 0.0,
    }
