from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from checks.contract import _hash_once, enforce_contract
from checks.quality import contract_metrics
from labelgate.errors import InputError
from labelgate.spec import parse_spec
from tests.conftest import item_rows, spec_dict


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows as the lake holds a CSV batch: every column text, plus _batch and _row."""
    df = pl.DataFrame(rows).cast(pl.String)
    return df.with_columns(
        pl.lit("b1").alias("_batch"), pl.Series("_row", range(1, len(rows) + 1), dtype=pl.Int64)
    )


def _bad(row: dict[str, Any], **change: Any) -> dict[str, Any]:
    return {**row, **change}


@pytest.mark.parametrize(
    ("change", "column", "check", "reason"),
    [
        ({"confidence": "high"}, "confidence", "dtype",
         "'high' is not a valid float (contract.confidence.dtype)"),
        ({"sentiment": "angry"}, "sentiment", "isin",
         "'angry' is not one of contract.sentiment.isin"),
        ({"tweet_id": None}, "tweet_id", "not_nullable",
         "missing value (contract.tweet_id.nullable is false)"),
        ({"tweet_id": "t0001"}, "tweet_id", "unique", "duplicate value 't0001'"),
        ({"text": None}, "text", "not_nullable", "missing value (contract.text.nullable"),
        ({"text": "x" * 501}, "text", "str_length",
         "length 501 outside contract.text.str_length [1, 500]"),
        ({"confidence": "1.5"}, "confidence", "max", "'1.5' > contract.confidence.max 1.0"),
        ({"confidence": "-0.1"}, "confidence", "min", "< contract.confidence.min 0.0"),
    ],
)
def test_bad_row_lands_in_quarantine(change: dict[str, Any], column: str, check: str,
                                     reason: str) -> None:
    rows = item_rows(20)
    rows[7] = _bad(rows[7], **change)
    result = enforce_contract(_frame(rows), spec=parse_spec(spec_dict()))
    q = result.quarantine
    assert q.height == 1, q
    record = q.row(0, named=True)
    assert (record["column"], record["check"], record["row"], record["batch"]) == (
        column, check, 8, "b1"
    )
    assert reason in record["reason"]
    assert result.rows_valid == 19 and result.rows_quarantined == 1
    assert result.rows_input == result.rows_valid + result.rows_quarantined
    assert 8 not in result.valid.get_column("_row").to_list()


def test_duplicate_id_keeps_the_first_occurrence() -> None:
    rows = item_rows(5)
    rows[3]["tweet_id"] = rows[0]["tweet_id"]
    rows[4]["tweet_id"] = rows[0]["tweet_id"]
    result = enforce_contract(_frame(rows), spec=parse_spec(spec_dict()))
    assert result.quarantine.get_column("row").to_list() == [4, 5]
    assert result.valid.get_column("_row").to_list() == [1, 2, 3]


def test_one_row_many_failures_counts_once() -> None:
    rows = item_rows(6)
    rows[2] = _bad(rows[2], sentiment="meh", confidence="abc", text=None)
    result = enforce_contract(_frame(rows), spec=parse_spec(spec_dict()))
    assert sorted(result.quarantine.get_column("check").to_list()) == [
        "dtype", "isin", "not_nullable"
    ]
    assert result.rows_quarantined == 1 and result.rows_valid == 5


def test_dtypes_are_cast_on_valid_rows() -> None:
    result = enforce_contract(_frame(item_rows(4)), spec=parse_spec(spec_dict()))
    assert result.valid.schema["confidence"] == pl.Float64
    assert result.quarantine.height == 0


def test_numbers_in_text_are_read_without_surrounding_whitespace() -> None:
    """Only the cells polars' cast refuses are stripped and cast again: the same numbers
    as stripping every cell, and a cell that still does not parse fails `dtype` with its
    value as written."""
    rows = item_rows(5)
    for row, value in zip(rows, [" 0.5", "0.7\t", " 1 ", "x ", None], strict=True):
        row["confidence"] = value
    result = enforce_contract(_frame(rows), spec=parse_spec(spec_dict(
        contract={"confidence": {"dtype": "float", "nullable": True, "min": 0, "max": 1}})))
    assert result.valid.get_column("confidence").to_list() == [0.5, 0.7, 1.0, None]
    q = result.quarantine.select("row", "check", "failure_value").rows()
    assert q == [(4, "dtype", "x ")]


@pytest.mark.parametrize(
    ("contract", "value", "check"),
    [
        ({"tweet_id": {"regex": "t[0-9]{4}"}}, "x0001", "regex"),
        ({"flag": {"dtype": "bool"}}, "maybe", "dtype"),
        ({"n": {"dtype": "int", "min": 0}}, "3.5", "dtype"),
        ({"n": {"dtype": "int", "min": 0}}, "-3", "min"),
    ],
)
def test_more_checks(contract: dict[str, Any], value: str, check: str) -> None:
    rows = [dict(r, flag="yes", n="2") for r in item_rows(4)]
    column = next(iter(contract))
    rows[1][column] = value
    result = enforce_contract(_frame(rows), spec=parse_spec(spec_dict(contract=contract)))
    assert result.quarantine.select("row", "column", "check").rows() == [(2, column, check)]


def test_regex_must_match_the_whole_value() -> None:
    rows = item_rows(3)
    rows[0]["tweet_id"] = "t0000-extra"
    spec = parse_spec(spec_dict(contract={"tweet_id": {"regex": "t[0-9]{4}"}}))
    result = enforce_contract(_frame(rows), spec=spec)
    assert result.quarantine.get_column("check").to_list() == ["regex"]


def test_missing_required_column_is_named() -> None:
    frame = _frame(item_rows(3)).drop("sentiment")
    with pytest.raises(InputError, match=r"missing column\(s\) \['sentiment'\]"):
        enforce_contract(frame, spec=parse_spec(spec_dict()))


def test_unparseable_records_are_quarantined_and_counted() -> None:
    rejects = pl.DataFrame(
        {"_row": [3], "reason": ["not valid JSON: Expecting value"], "raw": ["{oops"],
         "_batch": ["b1"]}
    )
    result = enforce_contract(_frame(item_rows(4)), spec=parse_spec(spec_dict()), rejects=rejects)
    assert result.rows_input == 5 and result.rows_valid == 4 and result.rows_quarantined == 1
    record = result.quarantine.row(0, named=True)
    assert (record["column"], record["check"], record["row"]) == ("_record", "parse", 3)


def test_metrics_add_up() -> None:
    rows = item_rows(30)
    rows[0]["sentiment"] = "angry"
    rows[1]["tweet_id"] = None
    result = enforce_contract(_frame(rows), spec=parse_spec(spec_dict()))
    m = contract_metrics(result, label_column="sentiment")
    assert m["rows_input"] == 30 and m["rows_valid"] == 28 and m["rows_quarantined"] == 2
    assert m["quarantine_rate"] == pytest.approx(2 / 30)
    assert m["n_classes"] == 3
    # 30 rows cycle 6 labels (10 per class); rows 0 (negative) and 1 (positive) removed
    assert m["min_rows_per_class"] == 9


# --- pandera validates only the rows that can fail: the same result as all rows ------------

_PREFILTER_CONTRACTS: list[dict[str, Any]] = [
    {},
    {"tweet_id": {"regex": "t[0-9]{2}", "nullable": True}, "sentiment": {"unique": True}},
    {"confidence": {"dtype": "float", "nullable": True, "min": 0, "max": 1}},
    {"confidence": {"dtype": "float", "nullable": False, "isin": [0.5, 1.0]}},
    {"n": {"dtype": "int", "min": 0, "max": 5, "unique": True, "nullable": True}},
    {"flag": {"dtype": "bool", "nullable": False}, "text": {"str_length": {"min": 2}}},
    {"text": {"str_length": {"max": 3}, "nullable": True}, "n": {"isin": ["1", "2"]}},
    {"text": {"str_length": {"min": 2, "max": 4}}},
    {"n": {"dtype": "float", "nullable": True, "unique": True, "max": 3}},
]


@pytest.mark.parametrize(
    ("bounds", "failing"),
    [({"min": 2}, ["ü"]), ({"max": 2}, ["Ünï", "abc", "abcd"]),
     ({"min": 2, "max": 3}, ["ü", "abcd"])],
)
def test_str_length_counts_characters_not_bytes(bounds: dict[str, int],
                                                failing: list[str]) -> None:
    texts = ["ü", "né", "Ünï", "ab", "abc", "abcd"]  # 1-4 characters, 1-5 bytes
    rows = [dict(r, text=t) for r, t in zip(item_rows(len(texts)), texts, strict=True)]
    spec = parse_spec(spec_dict(contract={"text": {"str_length": bounds}}))
    q = enforce_contract(_frame(rows), spec=spec).quarantine
    assert q.filter(pl.col("check") == "str_length")["failure_value"].to_list() == failing


def test_validating_only_rows_that_can_fail_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pandera checks only the rows `_rows_to_validate` keeps: the result (records, their
    order, valid rows, errors) is the one validating every row gives."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from polars.testing import assert_frame_equal

    import checks.contract as contract

    values = {
        "tweet_id": ["t01", "t02", "x", "", None],
        "text": ["hello", "", "ab", "ü", "né", "Ünï", None],
        "sentiment": ["negative", "positive", "Positive ", "x", None],
        "confidence": ["0.5", "1", "2", "-0.1", "nan", "inf", "x", None],
        "n": ["1", "2", "7", "-1", "1.5", "x", None],
        "flag": ["yes", "no", "maybe", None],
    }
    row = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in values.items()})

    def outcome(frame: pl.DataFrame, spec: Any) -> Any:
        try:
            r = enforce_contract(frame, spec=spec)
        except InputError as exc:
            return str(exc)
        return r.quarantine, r.valid, r.rows_quarantined

    @settings(max_examples=120, deadline=None)
    @given(st.lists(row, max_size=12), st.sampled_from(_PREFILTER_CONTRACTS))
    def check(rows: list[dict[str, Any]], contract_: dict[str, Any]) -> None:
        spec = parse_spec(spec_dict(contract=contract_))
        frame = pl.DataFrame(rows, schema=dict.fromkeys(values, pl.String)).with_columns(
            pl.lit("b1").alias("_batch"),
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_row"),
        )
        fast = outcome(frame, spec)
        with monkeypatch.context() as m:
            m.setattr(contract, "_rows_to_validate", lambda df, spec: df)
            every_row = outcome(frame, spec)
        if isinstance(fast, str) or isinstance(every_row, str):
            assert fast == every_row
            return
        assert_frame_equal(fast[0], every_row[0])
        assert_frame_equal(fast[1], every_row[1])
        assert fast[2] == every_row[2]

    check()


# --- per batch + merge == the whole frame at once ------------------------------------------

def _batches(rows: list[dict[str, Any]], cuts: list[int]) -> list[pl.DataFrame]:
    frames = []
    for k, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, len(rows)], strict=True)):
        df = pl.DataFrame(rows[lo:hi], schema={c: pl.String for c in rows[0]})
        frames.append(df.with_columns(
            pl.lit(f"b{k}").alias("_batch"),
            pl.Series("_row", range(1, hi - lo + 1), dtype=pl.Int64),
        ))
    return frames


def _merged(frames: list[pl.DataFrame], spec: Any) -> Any:
    from checks.contract_batches import BatchPart, contract_batch, merge_batches

    empty = pl.DataFrame(schema={"_batch": pl.String, "_row": pl.Int64, "reason": pl.String,
                                 "raw": pl.String})
    parts = [contract_batch(BatchPart(f, empty, spec, "items", f"file{k}.csv"))
             for k, f in enumerate(frames)]
    return merge_batches(parts, spec=spec)


def _same(a: Any, b: Any) -> None:
    keys = ["batch", "row", "column", "check"]
    assert a.quarantine.sort(keys).to_dicts() == b.quarantine.sort(keys).to_dicts()
    assert a.valid.to_dicts() == b.valid.to_dicts()
    assert (a.rows_input, a.rows_quarantined) == (b.rows_input, b.rows_quarantined)


def test_batches_merge_like_the_whole_frame() -> None:
    spec = parse_spec(spec_dict())
    rows = [{k: None if v is None else str(v) for k, v in r.items()} for r in item_rows(30)]
    rows[3]["tweet_id"] = "t0001"  # repeat inside batch 0
    rows[12]["tweet_id"] = "t0002"  # repeat of batch 0's id in batch 1
    rows[5]["sentiment"] = "angry"  # first occurrence invalid ...
    rows[25]["tweet_id"] = "t0005"  # ... its later repeat (batch 2) still fails unique
    rows[27]["tweet_id"] = "t0002"  # a third copy (its second copy already failed): fails
    rows[20]["confidence"] = "lots"  # a dtype failure
    frames = _batches(rows, [10, 20])
    whole = enforce_contract(pl.concat(frames), spec=spec)
    merged = _merged(frames, spec)
    _same(merged, whole)
    bad = set(merged.quarantine.select("batch", "row").iter_rows())
    assert {("b0", 4), ("b1", 3), ("b2", 6), ("b2", 8), ("b0", 6), ("b2", 1)} <= bad
    assert merged.rows_quarantined == 6 and merged.rows_valid == 24


def test_the_same_batch_twice_merges_like_the_whole_frame() -> None:
    """One file matched twice is one batch twice: its second copy's rows are repeats."""
    spec = parse_spec(spec_dict())
    rows = [{k: None if v is None else str(v) for k, v in r.items()} for r in item_rows(8)]
    rows[2]["sentiment"] = "angry"
    (frame,) = _batches(rows, [])
    merged = _merged([frame, frame], spec)
    _same(merged, enforce_contract(pl.concat([frame, frame]), spec=spec))
    assert merged.rows_valid == 7 and merged.rows_quarantined == 9


def test_batches_merge_property() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    spec = parse_spec(spec_dict())
    ids = st.sampled_from(["a", "b", "c", "d", None])
    label = st.sampled_from(["negative", "positive", "Positive ", "x"])
    conf = st.sampled_from(["0.5", "2", "nan", "x", None])
    row = st.fixed_dictionaries({"tweet_id": ids, "text": st.just("hello"),
                                 "sentiment": label, "confidence": conf})

    @settings(max_examples=60, deadline=None)
    @given(st.lists(row, min_size=1, max_size=12), st.lists(st.integers(0, 12), max_size=3))
    def check(rows: list[dict[str, Any]], raw_cuts: list[int]) -> None:
        cuts = sorted({c for c in raw_cuts if 0 < c < len(rows)})
        frames = _batches(rows, cuts)
        _same(_merged(frames, spec), enforce_contract(pl.concat(frames), spec=spec))

    check()


def test_class_counts_keep_a_class_excluded_entirely_at_zero() -> None:
    from checks.quality import class_counts

    before = pl.DataFrame({"label": ["a", "a", "b", "c"]})
    after = before.filter(pl.col("label") != "b")
    counts = class_counts(after, label_column="label", classes_of=before)
    assert counts.rows() == [("a", 2), ("c", 1), ("b", 0)]
    assert class_counts(after, label_column="label").get_column("label").to_list() == ["a", "c"]


@pytest.mark.parametrize("values", [
    pl.Series("x", [], dtype=pl.String),
    pl.Series("x", ["a"]),
    pl.Series("x", [None, None, "a"]),
    pl.Series("x", ["a", "b", "a", "c", "a", "b"]),
    pl.Series("x", [3, 1, 2, 3, None, 7, 1]),
    pl.Series("x", [0.5, float("nan"), float("nan"), None, 0.5, 2.0]),
    pl.Series("x", [f"id-{i % 97}" for i in range(500)] + [f"solo-{i}" for i in range(50)]),
])
def test_hash_once_is_polars_is_duplicated(values: pl.Series) -> None:
    """The sort-based unique check marks exactly the rows `hash().is_duplicated()` does."""
    expected = (~values.hash().is_duplicated()).to_list()
    assert _hash_once(values).to_list() == expected
