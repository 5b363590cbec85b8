"""The contract one batch at a time, and `unique` across the run's batches.

The contract's checks are per row except `unique`, which spans the run's rows. So each
batch is checked on its own (a part: `contract_batch`, cacheable by batch hash and
`contract_fingerprint`), keeping the coerced values of its `unique` columns for every
row; `merge_batches` then applies `unique` across batches in batch order. The result is
the one `enforce_contract` gives on the concatenated batches (tests/test_contract.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import partial

import polars as pl

from checks.contract import (
    _VALUE_EXCERPT,
    QUARANTINE_SCHEMA,
    ContractResult,
    _enforce,
    _reason,
    enforce_contract,
    repeated_hashes,
)
from labelgate.spec import Spec
from labelgate.stages.ingest.readers import BATCH, ROW

_PART = "__lg_part"  # merge_batches: the position of a row's batch

CONTRACT_LOGIC_VERSION = 1  # bump when a change here or in checks.contract changes results


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
    valids = [p.result.valid for p in parts]
    quarantine = pl.concat([p.result.quarantine for p in parts])
    rows_input = sum(p.result.rows_input for p in parts)
    rows_quarantined = sum(p.result.rows_quarantined for p in parts)
    if len(parts) > 1 and unique_columns(spec):
        # parts are told apart by position, not by `_batch`: one file matched twice is the
        # same batch twice, and its second copy's rows repeat the first's ids
        keys = _tag_parts([p.keys for p in parts])
        largest = max(range(len(parts)), key=lambda i: parts[i].keys.height)
        across = _repeats_across_batches(keys, spec=spec, source=source, largest=largest)
        if across.height:
            valids = _drop_repeats(valids, across)
            rows_quarantined += sum(p.result.valid.height for p in parts) - sum(
                v.height for v in valids)
            quarantine = pl.concat([
                quarantine,
                across.drop(_PART).cast(QUARANTINE_SCHEMA),  # type: ignore[arg-type]
            ])
    valid = pl.concat(valids, how="diagonal_relaxed")
    return ContractResult(
        valid=valid, quarantine=quarantine, rows_input=rows_input,
        rows_quarantined=rows_quarantined,
    )


def _drop_repeats(valids: list[pl.DataFrame], across: pl.DataFrame) -> list[pl.DataFrame]:
    """`valids` (one frame per part) without the rows `across` names, each part joined
    with its own repeats only: a night's kept batch, which has none, is not searched.

    Parameters
    ----------
    valids : list of pl.DataFrame
        Each part's valid rows, in part order; frame i has shape (n_i, k_i).
    across : pl.DataFrame
        `_repeats_across_batches`' records: `_PART`, batch, row, ...

    Returns
    -------
    list of pl.DataFrame
        The same frames, in order, frame i of shape (n_i - its repeats, k_i).
    """
    bad = across.select(pl.col(_PART), pl.col("batch").alias(BATCH), pl.col("row").alias(ROW))
    out = list(valids)
    for (i,), rows in bad.unique().partition_by(_PART, as_dict=True).items():
        v = valids[int(i)]
        rows = rows.select(pl.col(BATCH), pl.col(ROW).cast(v.schema[ROW]))
        out[int(i)] = v.join(rows, on=[BATCH, ROW], how="anti",
                             maintain_order="left")
    return out


def _tag_parts(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """`frames` concatenated (columns unioned), each row tagged with its frame's position.

    Parameters
    ----------
    frames : list of pl.DataFrame
        One frame per batch, in batch order; frame i has shape (n_i, k_i).

    Returns
    -------
    pl.DataFrame
        Shape (sum n_i, |union of columns| + 1); `_PART` (UInt32) is i.
    """
    return pl.concat(
        [f.with_columns(pl.lit(i, pl.UInt32).alias(_PART)) for i, f in enumerate(frames)],
        how="diagonal_relaxed",
    )


def _repeats_across_batches(keys: pl.DataFrame, *, spec: Spec, source: str, largest: int
                            ) -> pl.DataFrame:
    """`unique` failures across batches: a value's first row in its batch, when an earlier
    batch (or an earlier row of another batch) already has the value.

    Parameters
    ----------
    keys : pl.DataFrame
        Every parsed row's `_PART`, `_batch`, `_row`, id and `unique` columns (coerced), in
        batch order; shape (n_rows, 3 + n_key_columns).
    spec, source : Spec, str
        The contract's spec and the source name written into each record.
    largest : int
        The part with the most rows (`_sharing_a_value`).

    Returns
    -------
    pl.DataFrame
        Shape (n_repeats, 9): `_PART` then the `QUARANTINE_SCHEMA` columns, one record per
        repeated (row, column), column by column.
    """
    id_col = spec.columns.id
    found = []
    for name in unique_columns(spec):
        col = pl.col(name)
        repeat = _sharing_a_value(keys, name, largest=largest).filter(
            col.is_not_null() & col.is_first_distinct().over(_PART) & ~col.is_first_distinct()
        )
        contract = spec.contract_for(name)
        found.append(repeat.select(
            pl.col(_PART),
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
    return pl.concat(found)


def _sharing_a_value(keys: pl.DataFrame, name: str, *, largest: int) -> pl.DataFrame:
    """`keys`' rows (in order) of every value of `name` whose hash occurs in two parts or
    more: a row's verdict across batches depends only on the rows with its value, and a
    value within one part never fails it. The `largest` part's hashes are looked up in the
    other parts' (a night: the kept batches' 1 M ids in the new batch's), the other parts'
    sorted (`repeated_hashes`). Float columns whole (NaN's hashes)."""
    if keys.schema[name].is_float():
        return keys
    hashes = keys.get_column(name).hash()
    in_largest = keys.get_column(_PART) == largest
    big, rest = hashes.filter(in_largest), hashes.filter(~in_largest)
    shared = pl.concat([big.filter(big.is_in(rest.implode())), repeated_hashes(rest)])
    return keys.filter(hashes.is_in(shared.implode()))
