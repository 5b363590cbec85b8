"""`labelgate issues`: the latest run's flagged and lowest-quality rows in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from labelgate.errors import LabelgateError
from labelgate.spec import Spec, load_spec

out = Console()
err = Console(stderr=True)
EXIT_OK, EXIT_INPUT = 0, 2


def issues(
    spec: Annotated[Path, typer.Argument(help="The dataset spec (YAML).", show_default=False)],
    store: Annotated[str | None, typer.Option(
        "--store", help="Store folder or fsspec URL (overrides the spec's `store`).",
        show_default=False)] = None,
    top: Annotated[int, typer.Option("--top", "-n", min=1, help="How many rows.")] = 20,
    label: Annotated[str | None, typer.Option(
        "--label", "-l", help="Only rows given this label.", show_default=False)] = None,
) -> None:
    """Print the latest run's flagged rows, then its lowest-quality unflagged ones ("worth
    a look"), with the given and suggested labels and the text."""
    # imported here: every `labelgate` command imports this module (flows/cli.py)
    from labelgate.stages.label_issues.listing import worth_a_look

    try:
        s = load_spec(spec)
        folder, report = _latest(s, store)
        table = pl.read_parquet(folder / "label_issues.parquet")
        rows = worth_a_look(table, top=top, label=label)
        texts = _texts(s, report)
    except (LabelgateError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None
    flagged = int(table.get_column("is_label_issue").fill_null(False).sum())
    out.print(f"{s.name} run {report['run_id']}: {flagged:,} of {table.height:,} rows flagged"
              + (f" (label {label!r})" if label else "") + f"; the top {rows.height}, flagged "
              "first, then the lowest label quality")
    out.print(_table(rows, texts))
    raise typer.Exit(EXIT_OK)


def _latest(s: Spec, store: str | None) -> tuple[Path, dict[str, Any]]:
    from labelgate.report import read_latest
    from labelgate.store.remote import working_store

    found = read_latest(working_store(s, store), s.name)
    if found is None:
        raise FileNotFoundError(f"no report for {s.name!r} yet; run `labelgate run` first")
    folder, report = found
    if not (folder / "label_issues.parquet").is_file():
        raise FileNotFoundError(
            f"run {report['run_id']} of {s.name!r} has no label issues (the spec needs a "
            f"label column with text or features, and label issues on)")
    return folder, report


def _texts(s: Spec, report: dict[str, Any]) -> dict[str, str]:
    """id -> the row's first text column, from the run's valid rows (empty without text)."""
    path = Path(str(report.get("paths", {}).get("valid_rows", "")))
    if not s.columns.text or not path.is_file():
        return {}
    frame = pl.read_parquet(path, columns=[s.columns.id, s.columns.text[0]])
    return dict(frame.select(pl.col(s.columns.id).cast(pl.String),
                             pl.col(s.columns.text[0]).cast(pl.String)).iter_rows())


def _table(rows: pl.DataFrame, texts: dict[str, str]) -> Table:
    """The rows as a table whose text column takes the width the others leave."""
    cells = [
        [str(r["id"]), str(r["given_label"]), str(r["suggested_label"]),
         "—" if r["label_quality"] is None else f"{r['label_quality']:.3f}",
         "flagged" if r["why"] == "flagged" else "look"]
        for r in rows.iter_rows(named=True)
    ]
    headers = ["id", "given", "suggested", "quality", "why"]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    room = max(20, out.width - sum(widths) - 2 * len(widths))
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header, width in zip(headers, widths, strict=True):
        table.add_column(header, no_wrap=True, min_width=width,
                         justify="right" if header == "quality" else "left")
    table.add_column("text", no_wrap=True, overflow="ellipsis", max_width=room)
    for c, r in zip(cells, rows.iter_rows(named=True), strict=True):
        text = texts.get(str(r["id"]), "").replace("\n", " ")
        table.add_row(*(escape(x) for x in c[:4]), c[4] if c[4] == "flagged" else "[dim]look[/dim]",
                      escape(text if len(text) <= room else text[: room - 1] + "…"))
    return table
