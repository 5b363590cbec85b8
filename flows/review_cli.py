"""`labelgate review export|import`: the human review loop (issue 10).

Registered in `flows/cli.py` with `app.add_typer(review_app, name="review")`. Reads the
latest finished run of a dataset from the store (label issues, consensus, valid rows);
imports nothing from Prefect. Exit codes: 0 ok, 2 bad input (the message names the file,
row or id; an import file in which no row has a label is one: nothing is written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape

from labelgate.errors import LabelgateError
from labelgate.spec import Spec, load_spec
from labelgate.stages import review

if TYPE_CHECKING:
    import duckdb

EXIT_OK, EXIT_INPUT = 0, 2
PROBABILITIES_FILE = "probabilities.parquet"  # per run, beside label_issues.parquet (optional)

review_app = typer.Typer(
    help="Send the items most worth a human's time to review; take corrections back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True, markup=False)  # ids, labels: printed as is
err = Console(stderr=True, highlight=False, soft_wrap=True)

SpecArg = Annotated[Path, typer.Argument(help="The dataset spec (YAML).", show_default=False)]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store folder or fsspec URL (overrides the spec's `store`).",
                 show_default=False),
]


class _BadInputError(Exception):
    """A bad-input condition found by the CLI itself (exit 2)."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(EXIT_INPUT)


def _label_column(spec: Spec) -> str:
    if spec.columns.label is None:
        raise _BadInputError(f"{spec.name}: columns.label is not set; review needs labels")
    return spec.columns.label


def _classes(spec: Spec, *frames: pl.Series) -> list[str]:
    contract = spec.contract.get(_label_column(spec))
    if contract is not None and contract.isin:
        return [str(c) for c in contract.isin]
    seen: set[str] = set()
    for s in frames:
        seen |= {str(v) for v in s.drop_nulls().to_list()}
    return sorted(seen)


def _has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the warehouse has a view of that name."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'main' AND view_name = ?",
        [name]).fetchall()
    return bool(found and found[0][0])


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the warehouse has a table (a read-only connection creates none; an older
    warehouse may predate a stage's table)."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
        [name],
    ).fetchone()
    return bool(found and found[0])


class _LatestRun:
    """The latest finished run's outputs that the review loop reads."""

    def __init__(self, spec: Spec, store: Path) -> None:
        # the store's modules are imported here: every `labelgate` command imports this one
        from labelgate.store import warehouse
        from labelgate.store.runs import reports_root

        wh = store / warehouse.WAREHOUSE_FILE
        if not wh.is_file():
            raise _BadInputError(f"{wh}: no warehouse (run `labelgate run {spec.name}` first)")
        with warehouse.connect(wh, read_only=True) as con:
            run = warehouse.latest_run(con, spec.name)
            if run is None:
                raise _BadInputError(f"{wh}: no finished run of dataset {spec.name!r} yet")
            self.run_id, self.dataset = run.run_id, spec.name
            self.consensus = self._consensus(con)
            self.db_issues = self._db_issues(con)
        self.items_path = store / "curated" / spec.name / f"run={self.run_id}" / "items.parquet"
        if not self.items_path.is_file():
            raise _BadInputError(
                f"{self.items_path}: the valid rows of run {self.run_id} are missing"
            )
        self.items = pl.read_parquet(self.items_path)
        self.label = _label_column(spec)
        missing = [c for c in (spec.columns.id, self.label) if c not in self.items.columns]
        if missing:
            raise _BadInputError(
                f"{self.items_path}: missing column(s) {missing} named in the spec"
            )
        self.report_dir = reports_root(store, spec.name) / self.run_id
        self.spec = spec

    def _consensus(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame | None:
        if not _has_table(con, "consensus"):
            return None
        return self._fetch(
            "SELECT item, majority, dawid_skene, n_labels, agreement FROM consensus"
            " WHERE run_id = ? AND dataset = ?", con,
            {"id": pl.String, "majority": pl.String, "dawid_skene": pl.String,
             "n_labels": pl.Int64, "agreement": pl.Float64},
        )

    def _db_issues(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame | None:
        # a view over label_issue_rows (labelgate.store.label_issue_rows), a table in a
        # warehouse not yet opened for writing by this version: the same rows either way
        if not _has_table(con, "label_issues") and not _has_view(con, "label_issues"):
            return None
        return self._fetch(
            "SELECT id, given_label, suggested_label, label_quality, is_label_issue, rank"
            " FROM label_issues WHERE run_id = ? AND dataset = ? ORDER BY rank", con,
            {"id": pl.String, "given_label": pl.String, "suggested_label": pl.String,
             "label_quality": pl.Float64, "is_label_issue": pl.Boolean, "rank": pl.Int64},
        )

    def _fetch(
        self, sql: str, con: duckdb.DuckDBPyConnection, schema: dict[str, Any]
    ) -> pl.DataFrame | None:
        """This run's rows of a warehouse query as a frame, or None when there are none."""
        rows = con.execute(sql, [self.run_id, self.dataset]).fetchall()
        return pl.DataFrame(rows, orient="row", schema=schema) if rows else None

    def label_issues(self) -> pl.DataFrame:
        """The run's label issues; without that stage, every valid row unflagged."""
        path = self.report_dir / "label_issues.parquet"
        if path.is_file():
            return pl.read_parquet(path)
        if self.db_issues is not None:
            return self.db_issues
        cols = self.spec.columns
        return self.items.select(
            pl.col(cols.id).cast(pl.String).alias("id"),
            pl.col(self.label).cast(pl.String).alias("given_label"),
            pl.lit(None, pl.String).alias("suggested_label"),
            pl.lit(None, pl.Float64).alias("label_quality"),
            pl.lit(False).alias("is_label_issue"),
        )

    def probabilities(self) -> pl.DataFrame | None:
        path = self.report_dir / PROBABILITIES_FILE
        return pl.read_parquet(path) if path.is_file() else None

    def valid_labels(self) -> pl.DataFrame:
        cols = self.spec.columns
        return self.items.select(pl.col(cols.id).cast(pl.String).alias("id"),
                                 pl.col(self.label).cast(pl.String).alias("label"))


def _gold(spec: Spec, store: Path) -> pl.DataFrame | None:
    """The spec's gold items (id, label), through the lake (a no-op if already ingested)."""
    from labelgate.store.lake import ingest_source, load_batches

    source = spec.sources.gold
    if source is None:
        return None
    batches = ingest_source(source, key="gold", dataset=spec.name, store=store,
                            base_dir=spec.base_dir)
    rows, _ = load_batches(batches)
    item, label = spec.gold_columns()
    missing = [c for c in (item, label) if c not in rows.columns]
    if missing:
        files = ", ".join(sorted({b.file for b in batches}))
        raise _BadInputError(
            f"{files}: gold is missing column(s) {missing} (agreement.gold_item/label)"
        )
    return rows.select(pl.col(item).cast(pl.String).alias("id"),
                       pl.col(label).cast(pl.String).alias("label"))


@review_app.command("export")
def export(
    spec: SpecArg,
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option(help="How many items to send.", min=0)] = 100,
    fmt: Annotated[
        str, typer.Option("--format", help="label-studio | csv | jsonl")
    ] = "label-studio",
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Output file (default: STORE/review/<dataset>/<run_id>/).",
                     show_default=False),
    ] = None,
    gold_rate: Annotated[
        float, typer.Option(help="Share of the batch that is gold items (needs sources.gold).")
    ] = 0.0,
    uncertainty: Annotated[str, typer.Option(help="margin | entropy")] = "margin",
    seed: Annotated[int, typer.Option(help="Seed for gold sampling and placement.")] = 13,
) -> None:
    """Write the latest run's items most worth reviewing, in priority order."""
    from labelgate.store import remote

    if fmt not in ("label-studio", "csv", "jsonl"):
        raise _fail(f"--format {fmt!r}: expected label-studio, csv or jsonl")
    if uncertainty not in ("margin", "entropy"):
        raise _fail(f"--uncertainty {uncertainty!r}: expected margin or entropy")
    try:
        sp = load_spec(spec)
        if not sp.columns.text:
            raise _BadInputError(f"{spec}: columns.text is empty; review needs a text to show")
        root = remote.working_store(sp, store)
        latest = _LatestRun(sp, root)
        gold = _gold(sp, root) if gold_rate > 0 else None
        if gold_rate > 0 and gold is None:
            raise _BadInputError(f"{spec}: --gold-rate {gold_rate} needs sources.gold in the spec")
        # items a reviewer already decided are not sent again (their label is the reviewer's)
        reviewed = set(review.load_corrections(root, sp.name).get_column("id").to_list())
        issues = latest.label_issues()
        queue = review.review_queue(
            issues, consensus=latest.consensus, probs=latest.probabilities(),
            limit=limit, gold=gold, gold_rate=gold_rate, seed=seed, reviewed=reviewed,
            mix=review.MixRule(uncertainty="entropy" if uncertainty == "entropy" else "margin"),
        )
        default = root / "review" / sp.name / latest.run_id / _EXPORT_FILE[fmt]
        target = out_path if out_path is not None else default
        _write_export(queue, issues, sp, latest, target, fmt=fmt)
    except (_BadInputError, LabelgateError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    counts = queue.group_by("reason").len().sort("reason").iter_rows()
    out.print(f"{sp.name} run {latest.run_id}: {queue.height} item(s) for review "
              f"({', '.join(f'{r} {n}' for r, n in counts) or 'nothing to review'})")
    if reviewed:
        out.print(f"{len(reviewed)} item(s) already reviewed are not queued again")
    out.print(f"wrote {target}")
    if fmt == "label-studio":
        out.print(f"labeling config: {target.parent / 'labeling-config.xml'}")
    raise typer.Exit(EXIT_OK)


_EXPORT_FILE = {"label-studio": "tasks.json", "csv": "review.csv", "jsonl": "review.jsonl"}


def _write_export(queue: pl.DataFrame, issues: pl.DataFrame, sp: Spec, latest: _LatestRun,
                  target: Path, *, fmt: str) -> None:
    """The queue in `fmt` at `target` (Label Studio also gets its labeling config), and
    queue.parquet beside it."""
    text_column = sp.columns.text[0]
    items = latest.items.with_columns(pl.col(sp.columns.id).cast(pl.String))
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "label-studio":
        classes = _classes(sp, latest.items.get_column(latest.label),
                           issues.get_column("given_label"),
                           issues.get_column("suggested_label"))
        tasks, config = review.to_label_studio(
            queue, items, text_column=text_column, classes=classes, id_column=sp.columns.id
        )
        target.write_text(json.dumps(tasks, indent=1, ensure_ascii=False))
        (target.parent / "labeling-config.xml").write_text(config)
    elif fmt == "csv":
        review.to_csv(queue, items, target, text_column=text_column, id_column=sp.columns.id)
    else:
        review.to_jsonl(queue, items, target, text_column=text_column, id_column=sp.columns.id)
    queue.write_parquet(target.parent / "queue.parquet")


def _why_empty(file: Path, skipped: str | None) -> str:
    """Why a corrections file gave no correction, and what to do."""
    if file.suffix.lower() == ".json":
        what = "no completed annotation with a choice"
        todo = "finish the annotations in Label Studio and export again"
    else:
        what = "no row has a label" if skipped else "the file has no rows"
        todo = "fill in the label column and import again"
    return f"{what}" + (f" ({skipped})" if skipped else "") + f"; {todo}"


@review_app.command("import")
def import_(
    spec: SpecArg,
    file: Annotated[Path, typer.Argument(help="Label Studio JSON export, or CSV/JSONL of "
                                         "id, label, reviewer[, timestamp].",
                                         show_default=False)],
    store: StoreOpt = None,
    id_field: Annotated[
        str, typer.Option(help="Task data field holding the item id (Label Studio).")
    ] = review.ID_FIELD,
) -> None:
    """Validate reviewer corrections and store them as an overlay batch in the lake."""
    from labelgate.store import remote

    try:
        sp = load_spec(spec)
        root = remote.working_store(sp, store)
        latest = _LatestRun(sp, root)
        read = review.read_corrections_file(file, id_field=id_field)
        corrections, skipped = read.corrections, read.skipped_summary()
        if corrections.height == 0:
            raise _BadInputError(f"{file}: nothing to import: {_why_empty(file, skipped)}; "
                                 "nothing was written")
        valid = latest.valid_labels()
        issues = latest.label_issues()
        classes = _classes(sp, valid.get_column("label"), issues.get_column("given_label"))
        checked = review.validate_corrections(
            corrections, items=valid, classes=classes, gold=_gold(sp, root),
        )
        batch = review.store_corrections(checked, source_file=file, dataset=sp.name, store=root)
        url = remote.store_url(sp, store)
        if url is not None:  # the overlay batch goes to the remote store now
            remote.push(remote.open_remote(url), root, sp.name)
    except _BadInputError as exc:
        raise _fail(str(exc)) from None
    except (LabelgateError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    applied = checked.applied
    n_changed = int(applied.get_column("changed").sum()) if applied.height else 0
    again = " (already imported: batch reused)" if batch.reused else ""
    out.print(f"{file}: {corrections.height} correction(s) read; accepted {applied.height} "
              f"({n_changed} change a label; the next run applies them), rejected "
              f"{checked.rejected.height}, gold answers {checked.gold_answers.height}{again}")
    if skipped is not None:
        out.print(f"  {skipped}")
    for kind, n in checked.reasons().items():
        out.print(f"  rejected {n}: {kind}")
    for row in checked.rejected.head(20).iter_rows(named=True):
        out.print(f"    {row['where']}: {row['reason']}")
    if checked.rejected.height > 20:
        out.print(f"    ... {checked.rejected.height - 20} more in {batch.path}/rejects.parquet")
    if checked.gold_answers.height:
        for r in review.reviewer_accuracy(checked.gold_answers).iter_rows(named=True):
            out.print(f"  reviewer {r['reviewer']}: {r['n_correct']}/{r['n_gold']} gold correct "
                      f"({r['accuracy']:.0%})")
    out.print(f"batch: {batch.path}")
    raise typer.Exit(EXIT_OK)
