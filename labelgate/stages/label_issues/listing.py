"""Listing a run's label issues for a person: the flagged rows first, then the rows of
lowest label quality that were not flagged ("worth a look"), so the flags and the ranking
tell one story."""

from __future__ import annotations

import polars as pl

from labelgate.errors import InputError

ISSUE_COLUMNS = ("id", "given_label", "suggested_label", "label_quality", "is_label_issue")


def worth_a_look(issues: pl.DataFrame, *, top: int, label: str | None = None) -> pl.DataFrame:
    """The `top` rows most worth reviewing.

    Parameters
    ----------
    issues
        The per-row label-issue table (``label_issues.parquet``): ``ISSUE_COLUMNS``, one
        row per valid row.
    top
        How many rows to return (at most).
    label
        Only rows given this label; `InputError` naming the labels when none is.

    Returns
    -------
    pl.DataFrame
        At most `top` rows of ``ISSUE_COLUMNS`` plus ``why`` ("flagged" or "worth a
        look"): flagged rows by ascending label quality, then unflagged ones the same way.
    """
    missing = [c for c in ISSUE_COLUMNS if c not in issues.columns]
    if missing:
        raise InputError(f"label issue table lacks column(s) {missing}")
    frame = issues.select(ISSUE_COLUMNS)
    if label is not None:
        labels = sorted(frame.get_column("given_label").drop_nulls().unique().to_list())
        if label not in labels:
            raise InputError(f"--label {label!r}: no row has that label; labels: {labels}")
        frame = frame.filter(pl.col("given_label") == label)
    flagged = pl.col("is_label_issue").fill_null(False)
    order = [flagged, "label_quality", "id"]
    # the `top` first rows without sorting every row (the ids make the order total): the
    # flagged rows come first, so they are looked among alone when they are enough (a
    # million rows' night: ~7% flagged), and the others only for the places left
    first = frame.filter(flagged)
    rest = max(top - first.height, 0)
    picked = first.bottom_k(top, by=["label_quality", "id"]) if not rest \
        else pl.concat([first, frame.filter(~flagged).bottom_k(rest, by=["label_quality", "id"])])
    return (
        picked.sort(order, descending=[True, False, False], nulls_last=True)
        .with_columns(pl.when(flagged).then(pl.lit("flagged")).otherwise(pl.lit("worth a look"))
                      .alias("why"))
    )


def report_rows(issues: pl.DataFrame, texts: pl.DataFrame | pl.LazyFrame, *, top: int,
                excerpt: int = 240) -> list[dict[str, object]]:
    """The report's table of suspicious rows: `worth_a_look`'s rows with a text excerpt.

    Parameters
    ----------
    issues
        The per-row label-issue table (``ISSUE_COLUMNS``).
    texts
        ``id`` and ``text`` of the rows (ids compared as text); a LazyFrame computes the
        text of the listed rows only.
    top
        How many rows (at most): the flagged ones first, then "worth a look".
    excerpt
        Characters of text kept.

    Returns
    -------
    list of dict
        One per row: id, text, given, suggested, quality, why.
    """
    rows = worth_a_look(issues, top=top).with_columns(pl.col("id").cast(pl.String))
    text = texts.lazy().filter(pl.col("id").cast(pl.String).is_in(
        rows.get_column("id").implode())).select(
        pl.col("id").cast(pl.String), pl.col("text").cast(pl.String).str.slice(0, excerpt),
    ).collect()
    joined = rows.join(text.unique("id", keep="first"), on="id", how="left",
                       maintain_order="left")
    return joined.select(
        "id", "text", pl.col("given_label").alias("given"),
        pl.col("suggested_label").alias("suggested"), pl.col("label_quality").alias("quality"),
        "why",
    ).to_dicts()
