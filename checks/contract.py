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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from labelgate.errors import InputError
from labelgate.spec import ColumnContract, DType, Spec
from labelgate.stages.ingest.readers import BATCH, ROW

# pandera is imported when a batch is checked: a run whose batches all come from the
# contract cache does not pay for its import (with pandas, which pandera imports whenever
# it is installed: docs/benchmarks/contract.md)
if TYPE_CHECKING:
    import pandera.polars as pa
    from pandera.api.polars.types import PolarsData

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
# a failed cell: its row (position in the coerced frame), column, value and check name
_FAILURE_SCHEMA: dict[str, Any] = {
    _IDX: pl.UInt32, "column": pl.String, "failure_case": pl.String, "check": pl.String,
}


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
    import pandera.polars as pa

    def check(data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_regex_match(data.key, pattern))

    return pa.Check(check, error="regex")


def build_schema(spec: Spec, columns: list[str]) -> pa.DataFrameSchema:
    """The pandera schema for the contracted columns present in `columns`."""
    import pandera.polars as pa

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
    check-by-check passes run over a few rows instead of all (measured against validating
    every row: docs/benchmarks/contract.md). A row is left out only when each contracted
    cell passes what pandera checks (`_cell_passes`), computed here in one polars pass.
    Where polars rejects an expression (a check that does not fit the column's dtype), all
    rows are validated and pandera reports as before. tests/test_contract.py compares this
    with validating every row.

    Parameters
    ----------
    df : pl.DataFrame
        The coerced rows with `_IDX`, shape (n_rows, n_columns + 1).
    spec : Spec
        The spec whose contract is enforced.

    Returns
    -------
    pl.DataFrame
        The rows that can fail, shape (n_candidates, n_columns + 1), n_candidates <= n_rows.
    """
    passes: list[pl.Expr] = []
    for name in spec.contracted_columns():
        if name not in df.columns:
            continue
        c = spec.contract_for(name)
        once = pl.lit(_hash_once(df.get_column(name))) if c.unique else None
        cell = _cell_passes(name, c, is_float=df.schema[name].is_float(), unique=once)
        if cell:
            col = pl.col(name)
            ok = pl.all_horizontal(cell).fill_null(False)
            # a null cell of a nullable column passes (pandera's checks ignore nulls there)
            passes.append(ok if c.nullable is False else col.is_null() | ok)
    if not passes:
        return df
    try:
        ok_rows = df.select(pl.all_horizontal(passes)).to_series()
    except pl.exceptions.PolarsError:
        return df
    return df.filter(~ok_rows)


def repeated_hashes(hashes: pl.Series) -> pl.Series:
    """The values of `hashes` that occur twice or more, each once: one sort (polars sorts
    on every core; its `is_duplicated` builds one hash table) and the equal neighbours."""
    ordered = hashes.sort()
    return ordered.filter(ordered == ordered.shift(1)).unique()


def _hash_once(values: pl.Series) -> pl.Series:
    """Whether no other value of `values` has the value's hash: `~values.hash()
    .is_duplicated()`, by `repeated_hashes`."""
    hashes = values.hash()
    return ~hashes.is_in(repeated_hashes(hashes).implode())


def _cell_passes(
    name: str, c: ColumnContract, *, is_float: bool, unique: pl.Expr | None = None
) -> list[pl.Expr]:
    """Conditions that together imply a non-null cell of `name` passes every check of `c`.

    The same expressions pandera's checks evaluate: not null (nor NaN in a float column)
    unless nullable; each check's expression true (for `str_length`, byte bounds that
    imply it); and for `unique`, a hash no other row's value has, so every occurrence of a
    repeated value is kept, in order, and `unique` finds the same first occurrence.

    Parameters
    ----------
    name : str
        The column.
    c : ColumnContract
        Its contract.
    is_float : bool
        Whether the coerced column is a float column.
    unique : pl.Expr, optional
        For `unique`, the column's `_hash_once` when the caller computed it.

    Returns
    -------
    list of pl.Expr
        Boolean expressions over the frame, each of length n_rows; empty when the column
        has no check.
    """
    col = pl.col(name)
    cell: list[pl.Expr] = []
    if c.nullable is False:
        cell.append(col.is_not_null())
        if is_float:
            cell.append(col.is_not_nan())
    if c.unique:
        cell.append(~col.hash().is_duplicated() if unique is None else unique)
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
        # these byte bounds (no counting; docs/benchmarks/contract.md) imply it holds
        lo, hi = c.str_length.min, c.str_length.max
        n_bytes = col.str.len_bytes()
        if lo is not None:
            cell.append(n_bytes.ge(lo if lo <= 1 else 4 * lo))
        if hi is not None:
            cell.append(n_bytes.le(hi))
    if c.regex is not None:
        cell.append(_regex_match(name, c.regex))
    return cell


def _coerce(df: pl.DataFrame, spec: Spec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast contracted columns to their dtype; return the frame and the failed cells."""
    casts: dict[str, pl.Expr] = {}
    numbers_from_text: list[str] = []  # surrounding whitespace stripped: `_strip_and_cast`
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
        else:
            cast = col.cast(target, strict=False)
            if dtype in ("int", "float") and df.schema[name] == pl.String:
                numbers_from_text.append(name)
        casts[name] = cast
    # cast once; a failed cell is one that was not null and is null after the cast
    out = df.with_columns(e.alias(n) for n, e in casts.items()) if casts else df
    failures = []
    for name in casts:
        if name in numbers_from_text:
            out = _strip_and_cast(df, out, name)
        failed = df.get_column(name).is_not_null() & out.get_column(name).is_null()
        bad = df.filter(failed).select(
            pl.col(_IDX), pl.lit(name).alias("column"),
            pl.col(name).cast(pl.String).alias("failure_case"),
        )
        failures.append(bad.with_columns(pl.lit("dtype").alias("check")))
    empty = pl.DataFrame(schema=_FAILURE_SCHEMA)
    return out, pl.concat([empty, *failures]) if failures else empty


def _strip_and_cast(df: pl.DataFrame, out: pl.DataFrame, name: str) -> pl.DataFrame:
    """`out` with the text cells of `name` that did not parse as its number type cast
    again without surrounding whitespace (`' 0.5'` is 0.5). polars' cast refuses any
    whitespace, so stripping only the cells it refused gives what stripping every cell
    would, without copying every value.

    Parameters
    ----------
    df : pl.DataFrame
        The rows before the cast; `name` is text. Shape (n_rows, n_columns).
    out : pl.DataFrame
        The rows after `col.cast(dtype, strict=False)`, same shape.
    name : str
        The column.

    Returns
    -------
    pl.DataFrame
        `out`, same shape, with the cells that parse once stripped filled in.
    """
    text, number = df.get_column(name), out.get_column(name)
    retry = (text.is_not_null() & number.is_null()).arg_true()
    if not retry.len():
        return out
    again = text.gather(retry).str.strip_chars().cast(number.dtype, strict=False)
    return out.with_columns(number.clone().scatter(retry, again))


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
    df = rows.with_row_index(_IDX)
    df, dtype_failures = _coerce(df, spec)
    _require_numeric_bounds(df, spec=spec, source=source)
    failures = _schema_failures(df, spec=spec, source=source)
    all_failures = _reportable_failures(failures, dtype_failures=dtype_failures)
    quarantine = _quarantine_records(all_failures, df, spec=spec, source=source)
    bad_idx = quarantine.get_column(_IDX).unique()
    quarantine = quarantine.select(list(QUARANTINE_SCHEMA))
    if rejects is not None and rejects.height:
        quarantine = pl.concat([quarantine, reject_records(rejects, source=source)])
    valid = df.filter(~pl.col(_IDX).is_in(bad_idx.implode())).drop(_IDX)
    n_rejects = rejects.height if rejects is not None else 0
    result = ContractResult(
        valid=valid,
        quarantine=quarantine.cast(QUARANTINE_SCHEMA),  # type: ignore[arg-type]
        rows_input=rows.height + n_rejects,
        rows_quarantined=bad_idx.len() + n_rejects,
    )
    return result, df.drop(_IDX)


def _require_numeric_bounds(df: pl.DataFrame, *, spec: Spec, source: str) -> None:
    """`InputError` for a contracted `min`/`max` on a column that is not numeric.

    Parameters
    ----------
    df : pl.DataFrame
        The coerced rows, shape (n_rows, n_columns).
    spec : Spec
        The spec whose contract is enforced.
    source : str
        The source name, for the message.
    """
    for name in spec.contracted_columns():
        c = spec.contract_for(name)
        if (c.min is not None or c.max is not None) and not df.schema[name].is_numeric():
            raise InputError(
                f"sources.{source}: contract.{name}.min/max need a numeric column, but "
                f"{name!r} is {df.schema[name]}; set contract.{name}.dtype: int or float"
            )


def _schema_failures(df: pl.DataFrame, *, spec: Spec, source: str) -> pl.DataFrame:
    """pandera's failed cells of `df`, validated lazily on the rows that can fail.

    Parameters
    ----------
    df, spec : pl.DataFrame, Spec
        As `_rows_to_validate`.
    source : str
        The source name, for error messages.

    Returns
    -------
    pl.DataFrame
        One row per failed (row, column, check), shape (n_failures, 4), in
        `_FAILURE_SCHEMA` (`_IDX` is the position in `df`), in pandera's order.

    Raises
    ------
    InputError
        On a schema-level failure (a wrong dtype the coercion could not fix).
    """
    import pandera.polars as pa

    schema = build_schema(spec, df.columns)
    checked = _rows_to_validate(df, spec)
    try:
        schema.validate(checked, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc: pl.DataFrame = exc.failure_cases
    else:
        return pl.DataFrame(schema=_FAILURE_SCHEMA)
    no_index = fc.filter(pl.col("index").is_null())
    if no_index.height:
        # schema-level failures (a wrong dtype the coercion could not fix, a missing column)
        first = no_index.row(0, named=True)
        raise InputError(
            f"sources.{source}: column {first['column']!r} fails {first['check']}: "
            f"{first['failure_case']}"
        ) from None
    # `index` is the position in `checked`; its `_IDX` is the position in `df`
    return fc.select(
        checked.get_column(_IDX).gather(fc.get_column("index").cast(pl.UInt32))
        .cast(pl.UInt32),
        pl.col("column").cast(pl.String),
        pl.col("failure_case").cast(pl.String),
        pl.col("check").cast(pl.String),
    )


def _reportable_failures(
    failures: pl.DataFrame, *, dtype_failures: pl.DataFrame
) -> pl.DataFrame:
    """Every failure to report, once: a cell's dtype failure hides its other checks, and a
    NaN's `nan` hides its `min`/`max`.

    Parameters
    ----------
    failures : pl.DataFrame
        pandera's failed cells, shape (n_failures, 4), `_FAILURE_SCHEMA`.
    dtype_failures : pl.DataFrame
        The cells that did not parse as their dtype, shape (n_dtype, 4), `_FAILURE_SCHEMA`.

    Returns
    -------
    pl.DataFrame
        Shape (n_reported, 4), `_FAILURE_SCHEMA`, sorted by `_IDX`, column, check.
    """
    # A cell that failed its dtype is null after the cast: report only the dtype failure.
    failures = failures.join(dtype_failures.select(_IDX, "column"), on=[_IDX, "column"], how="anti")
    # A NaN also fails `max` (polars orders NaN last): report only `nan`.
    nan = failures.filter(pl.col("check") == "nan").select(_IDX, "column")
    bounds = pl.col("check").is_in(["min", "max"])
    failures = pl.concat([
        failures.filter(~bounds),
        failures.filter(bounds).join(nan, on=[_IDX, "column"], how="anti"),
    ])
    return pl.concat([dtype_failures, failures]).sort(_IDX, "column", "check")


def _quarantine_records(
    failures: pl.DataFrame, df: pl.DataFrame, *, spec: Spec, source: str
) -> pl.DataFrame:
    """The quarantine records of `failures`: row keys and a reason joined on.

    Parameters
    ----------
    failures : pl.DataFrame
        The failures to report, shape (n_reported, 4), `_FAILURE_SCHEMA`.
    df : pl.DataFrame
        The coerced rows with `_IDX`, `_batch`, `_row` and the id column, shape
        (n_rows, n_columns + 1).
    spec : Spec
        The spec whose contract is enforced.
    source : str
        The source name, written into each record.

    Returns
    -------
    pl.DataFrame
        Shape (n_reported, 9): `_IDX` and the `QUARANTINE_SCHEMA` columns (not yet in
        that order or cast), in the order of `failures`.
    """
    contracts = {name: spec.contract_for(name) for name in spec.contracted_columns()}

    def reason(r: dict[str, Any]) -> str:
        return _reason(r["column"], r["check"], r["failure_case"], contracts[r["column"]])

    keys = df.select(
        pl.col(_IDX),
        pl.col(BATCH).alias("batch"),
        pl.col(ROW).alias("row"),
        pl.col(spec.columns.id).cast(pl.String).alias("id"),
    )
    # one reason per distinct (column, check, value): a value repeated in many rows (a
    # common bad label, a missing text) is described once
    cell = ["column", "check", "failure_case"]
    reasons = failures.select(cell).unique(maintain_order=True).with_columns(
        pl.struct(cell).map_elements(reason, return_dtype=pl.String).alias("reason")
    )
    return (
        failures.join(keys, on=_IDX, how="left")
        .join(reasons, on=cell, how="left", nulls_equal=True, maintain_order="left")
        .with_columns(pl.lit(source).alias("source"))
        .rename({"failure_case": "failure_value"})
        .with_columns(pl.col("failure_value").str.slice(0, _VALUE_EXCERPT))
    )


def reject_records(rejects: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Quarantine records (check `parse`) for records the reader could not parse.

    Parameters
    ----------
    rejects : pl.DataFrame
        `_batch`, `_row`, reason, raw; shape (n_rejects, 4).
    source : str
        The source name, written into each record.

    Returns
    -------
    pl.DataFrame
        Shape (n_rejects, 8), the `QUARANTINE_SCHEMA` columns in order.
    """
    return rejects.select(
        pl.lit(source).alias("source"),
        pl.col(BATCH).alias("batch"),
        pl.col(ROW).alias("row"),
        pl.lit(None, dtype=pl.String).alias("id"),
        pl.lit("_record").alias("column"),
        pl.lit("parse").alias("check"),
        pl.col("raw").str.slice(0, _VALUE_EXCERPT).alias("failure_value"),
        pl.col("reason"),
    )
