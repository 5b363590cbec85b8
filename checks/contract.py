"""The schema contract: a pandera (polars backend) schema built from the spec.

`enforce_contract` splits a run's rows into valid rows and a quarantine table with one
record per failed (row, column, check) and a human reason naming the spec key. Types are
coerced first (CSV columns arrive as text): a value that does not parse as the
contract's dtype is quarantined with check `dtype`, and its other checks are not reported
again. Data checks run on a collected frame (a LazyFrame would check dtypes only).

NaN in a float column with `min` or `max` fails check `nan` (polars orders NaN above every
number, so `NaN >= min` holds and a min-only range would let it through); it is then not
reported again as `min`/`max`. `inf`/`-inf` fail the range like any large number. An
`isin` failure whose value equals an allowed one up to case and whitespace says so
(`'Positive ' differs from 'positive' only in case/whitespace`); it is still quarantined.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from labelgate.errors import InputError
from labelgate.io import BATCH, ROW
from labelgate.spec import ColumnContract, DType, Spec

QUARANTINE_SCHEMA: dict[str, Any] = {
    "source": pl.String,
    "batch": pl.String,
    "row": pl.Int64,
    "id": pl.String,
    "column": pl.String,
    "check": pl.String,
    "failure_value": pl.String,
    "reason": pl.String,
}
_POLARS_DTYPE: dict[DType, Any] = {
    "str": pl.String,
    "int": pl.Int64,
    "float": pl.Float64,
    "bool": pl.Boolean,
}
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]
_VALUE_EXCERPT = 120
_IDX = "__lg_idx"


@dataclass(frozen=True)
class ContractResult:
    """Valid rows go on; quarantined rows are kept with every reason they failed."""

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows_input: int
    rows_quarantined: int
    cached_batches: frozenset[str] = frozenset()  # batches whose result came from the cache

    @property
    def rows_valid(self) -> int:
        return self.valid.height


def _unique_check(data: PolarsData) -> pl.LazyFrame:
    # The first occurrence is valid; later repeats fail (pandera's own `unique` flags all).
    col = pl.col(data.key)
    return data.lazyframe.select(col.is_first_distinct() | col.is_null())


def _not_nan_check(data: PolarsData) -> pl.LazyFrame:
    col = pl.col(data.key)
    if not data.lazyframe.collect_schema()[data.key].is_float():
        return data.lazyframe.select(pl.lit(True).alias(data.key))
    return data.lazyframe.select(col.is_null() | col.is_not_nan())


def _near_miss(value: str, allowed: list[str | int | float | bool]) -> str | None:
    """The allowed label `value` equals up to case and whitespace, if any."""
    key = " ".join(value.split()).casefold()
    for a in allowed:
        if isinstance(a, str) and a != value and " ".join(a.split()).casefold() == key:
            return a
    return None


def _regex_match(name: str, pattern: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).str.contains(f"^(?:{pattern})$")


def _regex_check(pattern: str) -> pa.Check:
    def check(data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_regex_match(data.key, pattern))

    return pa.Check(check, error="regex")


def build_schema(spec: Spec, columns: list[str]) -> pa.DataFrameSchema:
    """The pandera schema for the contracted columns present in `columns`."""
    fields: dict[str, pa.Column] = {}
    for name in spec.contracted_columns():
        if name not in columns:
            continue
        c = spec.contract_for(name)
        checks: list[pa.Check] = []
        if c.unique:
            checks.append(pa.Check(_unique_check, error="unique"))
        if c.isin is not None:
            checks.append(pa.Check.isin(list(c.isin), error="isin"))
        if c.min is not None or c.max is not None:
            checks.append(pa.Check(_not_nan_check, error="nan"))
        if c.min is not None:
            checks.append(pa.Check.ge(c.min, error="min"))
        if c.max is not None:
            checks.append(pa.Check.le(c.max, error="max"))
        if c.str_length is not None:
            checks.append(
                pa.Check.str_length(c.str_length.min, c.str_length.max, error="str_length")
            )
        if c.regex is not None:
            checks.append(_regex_check(c.regex))
        dtype = _POLARS_DTYPE[c.dtype] if c.dtype else None
        fields[name] = pa.Column(dtype, checks=checks, nullable=bool(c.nullable is not False))
    return pa.DataFrameSchema(fields, name=f"{spec.name} contract")


def _rows_to_validate(df: pl.DataFrame, spec: Spec) -> pl.DataFrame:
    """The rows of `df` (coerced) that can fail `build_schema`'s schema, in order.

    pandera validating only these reports the same failures as on all of `df`, and its
    check-by-check passes run over a few rows instead of all (bench/bench_ingest.py, 1 M
    rows, 1.5% failing: 0.19 s instead of 0.21 s for `enforce_contract`). A row is left
    out only when each contracted cell passes what pandera checks, computed here in one
    polars pass with the same expressions: not null (nor NaN in a float column) unless
    nullable; each check's expression true (for `str_length`, byte bounds that imply
    it); and for `unique`, a hash no other row's value has, so every occurrence of a
    repeated value is kept, in order, and `unique` finds the same first occurrence. A
    null cell of a nullable column passes (pandera's checks
    ignore nulls there). Where polars rejects an expression (a check that does not fit
    the column's dtype), all rows are validated and pandera reports as before.
    tests/test_contract.py compares this with validating every row.
    """
    passes: list[pl.Expr] = []
    for name in spec.contracted_columns():
        if name not in df.columns:
            continue
        c = spec.contract_for(name)
        col = pl.col(name)
        is_float = df.schema[name].is_float()
        cell: list[pl.Expr] = []
        if c.nullable is False:
            cell.append(col.is_not_null())
            if is_float:
                cell.append(col.is_not_nan())
        if c.unique:
            cell.append(~col.hash().is_duplicated())
        if c.isin is not None:
            cell.append(col.is_in(frozenset(c.isin)))  # pandera's Check.isin
        if (c.min is not None or c.max is not None) and is_float:
            cell.append(col.is_not_nan())  # _not_nan_check
        if c.min is not None:
            cell.append(col.ge(c.min))  # Check.ge
        if c.max is not None:
            cell.append(col.le(c.max))  # Check.le
        if c.str_length is not None:
            # Check.str_length counts characters; a character is 1 to 4 UTF-8 bytes, so
            # these byte bounds (no counting: 15x cheaper) imply it holds
            lo, hi = c.str_length.min, c.str_length.max
            n_bytes = col.str.len_bytes()
            if lo is not None:
                cell.append(n_bytes.ge(lo if lo <= 1 else 4 * lo))
            if hi is not None:
                cell.append(n_bytes.le(hi))
        if c.regex is not None:
            cell.append(_regex_match(name, c.regex))
        if cell:
            ok = pl.all_horizontal(cell).fill_null(False)
            passes.append(ok if c.nullable is False else col.is_null() | ok)
    if not passes:
        return df
    try:
        ok_rows = df.select(pl.all_horizontal(passes)).to_series()
    except pl.exceptions.PolarsError:
        return df
    return df.filter(~ok_rows)


def _coerce(df: pl.DataFrame, spec: Spec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast contracted columns to their dtype; return the frame and the failed cells."""
    casts: dict[str, pl.Expr] = {}
    for name in spec.contracted_columns():
        dtype = spec.contract_for(name).dtype
        if dtype is None or name not in df.columns:
            continue
        target = _POLARS_DTYPE[dtype]
        if df.schema[name] == target:
            continue
        col = pl.col(name)
        cast: pl.Expr
        if dtype == "bool" and df.schema[name] == pl.String:
            low = col.str.strip_chars().str.to_lowercase()
            cast = pl.when(low.is_in(_TRUE)).then(True).when(low.is_in(_FALSE)).then(False)
        elif dtype in ("int", "float") and df.schema[name] == pl.String:
            cast = col.str.strip_chars().cast(target, strict=False)
        else:
            cast = col.cast(target, strict=False)
        casts[name] = cast
    # cast once; a failed cell is one that was not null and is null after the cast
    out = df.with_columns(e.alias(n) for n, e in casts.items()) if casts else df
    failures = []
    for name in casts:
        failed = df.get_column(name).is_not_null() & out.get_column(name).is_null()
        bad = df.filter(failed).select(
            pl.col(_IDX), pl.lit(name).alias("column"),
            pl.col(name).cast(pl.String).alias("failure_case"),
        )
        failures.append(bad.with_columns(pl.lit("dtype").alias("check")))
    empty = pl.DataFrame(
        schema={_IDX: pl.UInt32, "column": pl.String, "failure_case": pl.String, "check": pl.String}
    )
    return out, pl.concat([empty, *failures]) if failures else empty


def _reason(column: str, check: str, value: str | None, c: ColumnContract) -> str:
    key = f"contract.{column}"
    shown = "null" if value is None else repr(value[:_VALUE_EXCERPT])
    match check:
        case "dtype":
            return f"{shown} is not a valid {c.dtype} ({key}.dtype)"
        case "not_nullable":
            return f"missing value ({key}.nullable is false)"
        case "unique":
            return f"duplicate value {shown}: an earlier row has it ({key}.unique)"
        case "isin":
            allowed = list(c.isin or [])
            text = f"{shown} is not one of {key}.isin {allowed}"
            near = _near_miss(value, allowed) if value is not None else None
            if near is not None:
                text += f"; {value!r} differs from {near!r} only in case/whitespace"
            return text
        case "nan":
            bounds = [f"{key}.{k} {v}" for k, v in (("min", c.min), ("max", c.max))
                      if v is not None]
            return f"NaN is not a number in range ({', '.join(bounds)})"
        case "min":
            return f"{shown} < {key}.min {c.min}"
        case "max":
            return f"{shown} > {key}.max {c.max}"
        case "str_length":
            lo = c.str_length.min if c.str_length else None
            hi = c.str_length.max if c.str_length else None
            n = len(value) if value is not None else 0
            return f"length {n} outside {key}.str_length [{lo}, {hi}]"
        case "regex":
            return f"{shown} does not match {key}.regex {c.regex!r}"
        case _:
            return f"{shown} fails {check} ({key})"


def check_columns(columns: list[str], spec: Spec, *, where: str) -> None:
    """`InputError` naming every required or contracted column missing from the data."""
    missing = [c for c in spec.contracted_columns() if c not in columns]
    if missing:
        shown = [c for c in columns if not c.startswith("_")]
        raise InputError(
            f"{where}: missing column(s) {missing} named in the spec "
            f"(columns/contract); the file has {shown}"
        )


def enforce_contract(
    rows: pl.DataFrame, *, spec: Spec, source: str = "items", rejects: pl.DataFrame | None = None
) -> ContractResult:
    """Validate `rows` (with `_batch`, `_row`) against the spec's contract.

    `rejects` (records the reader could not parse: `_batch`, `_row`, reason, raw) are
    quarantined too, so input rows = valid + quarantined.
    """
    return _enforce(rows, spec=spec, source=source, rejects=rejects)[0]


def _enforce(
    rows: pl.DataFrame, *, spec: Spec, source: str, rejects: pl.DataFrame | None,
    where: str | None = None,
) -> tuple[ContractResult, pl.DataFrame]:
    """`enforce_contract`, and the coerced frame of every input row (for cross-batch
    checks)."""
    check_columns(rows.columns, spec, where=where or f"sources.{source}")
    id_col = spec.columns.id
    df = rows.with_row_index(_IDX)
    df, dtype_failures = _coerce(df, spec)
    for name in spec.contracted_columns():
        c = spec.contract_for(name)
        if (c.min is not None or c.max is not None) and not df.schema[name].is_numeric():
            raise InputError(
                f"sources.{source}: contract.{name}.min/max need a numeric column, but "
                f"{name!r} is {df.schema[name]}; set contract.{name}.dtype: int or float"
            )
    schema = build_schema(spec, df.columns)
    checked = _rows_to_validate(df, spec)
    try:
        schema.validate(checked, lazy=True)
        failures = pl.DataFrame(
            schema={_IDX: pl.UInt32, "column": pl.String, "failure_case": pl.String,
                    "check": pl.String}
        )
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        no_index = fc.filter(pl.col("index").is_null())
        if no_index.height:
            # schema-level failures (a wrong dtype the coercion could not fix, a missing column)
            first = no_index.row(0, named=True)
            raise InputError(
                f"sources.{source}: column {first['column']!r} fails {first['check']}: "
                f"{first['failure_case']}"
            ) from None
        # `index` is the position in `checked`; its `_IDX` is the position in `df`
        failures = fc.select(
            checked.get_column(_IDX).gather(fc.get_column("index").cast(pl.UInt32))
            .cast(pl.UInt32),
            pl.col("column").cast(pl.String),
            pl.col("failure_case").cast(pl.String),
            pl.col("check").cast(pl.String),
        )
    # A cell that failed its dtype is null after the cast: report only the dtype failure.
    failures = failures.join(dtype_failures.select(_IDX, "column"), on=[_IDX, "column"], how="anti")
    # A NaN also fails `max` (polars orders NaN last): report only `nan`.
    nan = failures.filter(pl.col("check") == "nan").select(_IDX, "column")
    failures = pl.concat([
        failures.filter(~pl.col("check").is_in(["min", "max"])),
        failures.filter(pl.col("check").is_in(["min", "max"])).join(
            nan, on=[_IDX, "column"], how="anti"),
    ])
    all_failures = pl.concat([dtype_failures, failures]).sort(_IDX, "column", "check")

    contracts = {name: spec.contract_for(name) for name in spec.contracted_columns()}

    def reason(r: dict[str, Any]) -> str:
        return _reason(r["column"], r["check"], r["failure_case"], contracts[r["column"]])

    keys = df.select(
        pl.col(_IDX),
        pl.col(BATCH).alias("batch"),
        pl.col(ROW).alias("row"),
        pl.col(id_col).cast(pl.String).alias("id"),
    )
    # one reason per distinct (column, check, value): a value repeated in many rows (a
    # common bad label, a missing text) is described once
    cell = ["column", "check", "failure_case"]
    reasons = all_failures.select(cell).unique(maintain_order=True).with_columns(
        pl.struct(cell).map_elements(reason, return_dtype=pl.String).alias("reason")
    )
    quarantine = (
        all_failures.join(keys, on=_IDX, how="left")
        .join(reasons, on=cell, how="left", nulls_equal=True, maintain_order="left")
        .with_columns(pl.lit(source).alias("source"))
        .rename({"failure_case": "failure_value"})
        .with_columns(pl.col("failure_value").str.slice(0, _VALUE_EXCERPT))
    )
    bad_idx = quarantine.get_column(_IDX).unique()
    quarantine = quarantine.select(list(QUARANTINE_SCHEMA))
    if rejects is not None and rejects.height:
        parsed = rejects.select(
            pl.lit(source).alias("source"),
            pl.col(BATCH).alias("batch"),
            pl.col(ROW).alias("row"),
            pl.lit(None, dtype=pl.String).alias("id"),
            pl.lit("_record").alias("column"),
            pl.lit("parse").alias("check"),
            pl.col("raw").str.slice(0, _VALUE_EXCERPT).alias("failure_value"),
            pl.col("reason"),
        )
        quarantine = pl.concat([quarantine, parsed])
    valid = df.filter(~pl.col(_IDX).is_in(bad_idx.implode())).drop(_IDX)
    n_rejects = rejects.height if rejects is not None else 0
    result = ContractResult(
        valid=valid,
        quarantine=quarantine.cast(QUARANTINE_SCHEMA),  # type: ignore[arg-type]
        rows_input=rows.height + n_rejects,
        rows_quarantined=bad_idx.len() + n_rejects,
    )
    return result, df.drop(_IDX)


# --- one batch at a time ---------------------------------------------------------------
# The contract's checks are per row except `unique`, which spans the run's rows. So each
# batch is checked on its own (a part: `contract_batch`, cacheable by batch hash and
# `contract_fingerprint`), keeping the coerced values of its `unique` columns for every
# row; `merge_batches` then applies `unique` across batches in batch order. The result is
# the one `enforce_contract` gives on the concatenated batches (tests/test_contract.py).

CONTRACT_LOGIC_VERSION = 1  # bump when a change to this module changes its results


@dataclass(frozen=True)
class BatchPart:
    """One batch's part of the contract: its rows and unparseable records."""

    rows: pl.DataFrame
    rejects: pl.DataFrame
    spec: Spec
    source: str
    where: str  # the file, for error messages


@dataclass(frozen=True)
class BatchContract:
    """A batch's contract result, and (`_batch`, `_row`, id, every `unique` column) of all
    its parsed rows, coerced, for the cross-batch `unique` check."""

    result: ContractResult
    keys: pl.DataFrame


def unique_columns(spec: Spec) -> list[str]:
    return [c for c in spec.contracted_columns() if spec.contract_for(c).unique]


def contract_fingerprint(spec: Spec, *, source: str = "items") -> str:
    """What a batch's contract result depends on besides its rows: the effective contract
    of every contracted column, the id column, the source name and this module's logic
    version. Equal fingerprints (and batch hashes) mean a cached result is valid."""
    payload = {
        "v": CONTRACT_LOGIC_VERSION,
        "source": source,
        "id": spec.columns.id,
        "contract": {c: spec.contract_for(c).model_dump(mode="json")
                     for c in spec.contracted_columns()},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def contract_batch(part: BatchPart) -> BatchContract:
    """Check one batch against the contract (a pure part: no store access)."""
    result, coerced = _enforce(
        part.rows, spec=part.spec, source=part.source,
        rejects=part.rejects if part.rejects.height else None, where=part.where,
    )
    id_col = part.spec.columns.id
    keep = [id_col, *[c for c in unique_columns(part.spec) if c != id_col]]
    keys = coerced.select(pl.col(BATCH), pl.col(ROW), *[pl.col(c) for c in keep])
    return BatchContract(result, keys)


def merge_batches(
    parts: list[BatchContract], *, spec: Spec, source: str = "items"
) -> ContractResult:
    """The run's contract result from its batches' (in batch order): valid rows and
    quarantines concatenated, then every `unique` column checked across batches (a row
    whose value appeared in an earlier batch fails, like a later repeat inside one batch)."""
    if not parts:
        return enforce_contract(pl.DataFrame(), spec=spec, source=source)
    # parts are told apart by position, not by `_batch`: one file matched twice is the same
    # batch twice, and its second copy's rows repeat the first's ids
    part = "__lg_part"
    valid = pl.concat(
        [p.result.valid.with_columns(pl.lit(i, pl.UInt32).alias(part))
         for i, p in enumerate(parts)], how="diagonal_relaxed",
    )
    quarantine = pl.concat([p.result.quarantine for p in parts])
    rows_input = sum(p.result.rows_input for p in parts)
    rows_quarantined = sum(p.result.rows_quarantined for p in parts)
    columns = unique_columns(spec)
    if len(parts) > 1 and columns:
        keys = pl.concat(
            [p.keys.with_columns(pl.lit(i, pl.UInt32).alias(part)) for i, p in enumerate(parts)],
            how="diagonal_relaxed",
        )
        id_col = spec.columns.id
        found = []
        for name in columns:
            col = pl.col(name)
            repeat = keys.filter(
                col.is_not_null() & col.is_first_distinct().over(part) & ~col.is_first_distinct()
            )
            contract = spec.contract_for(name)
            found.append(repeat.select(
                pl.col(part),
                pl.lit(source).alias("source"),
                pl.col(BATCH).alias("batch"),
                pl.col(ROW).cast(pl.Int64).alias("row"),
                pl.col(id_col).cast(pl.String).alias("id"),
                pl.lit(name).alias("column"),
                pl.lit("unique").alias("check"),
                col.cast(pl.String).str.slice(0, _VALUE_EXCERPT).alias("failure_value"),
                col.cast(pl.String).map_elements(
                    partial(_reason, name, "unique", c=contract), return_dtype=pl.String
                ).alias("reason"),
            ))
        across = pl.concat(found)
        if across.height:
            bad = across.select(pl.col(part), pl.col("batch").alias(BATCH),
                                pl.col("row").cast(valid.schema[ROW]).alias(ROW)).unique()
            on = [part, BATCH, ROW]
            newly = valid.join(bad, on=on, how="semi").height
            valid = valid.join(bad, on=on, how="anti", maintain_order="left")
            rows_quarantined += newly
            quarantine = pl.concat([
                quarantine,
                across.drop(part).cast(QUARANTINE_SCHEMA),  # type: ignore[arg-type]
            ])
    return ContractResult(
        valid=valid.drop(part), quarantine=quarantine, rows_input=rows_input,
        rows_quarantined=rows_quarantined,
    )
