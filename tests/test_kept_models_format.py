"""The kept fold models' storage (`labelgate.store.kept_models`, issue 26): written as
``coef.npy`` (and ``embed.npy``), read back to the same values in the layout the night's
scoring reads without a copy; units written before (``coef.parquet``, ``embed.parquet``)
still load, to the values the earlier loader gave; new rows score to the same bits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import LABELS, TEXTS

from labelgate.stages.label_issues.incremental import score_with_kept
from labelgate.stages.label_issues.models import FoldModel, KeptModels, out_of_fold
from labelgate.store import kept_models, lake
from labelgate.store.remote import open_remote, pull, push

WORDS = ["late", "great", "when", "lost", "loved", "schedule", "crew", "bag", "gate", "seat"]
WHEN = datetime(2026, 12, 1, tzinfo=UTC)


def _frame(n: int, *, offset: int = 0, classes: int = 3) -> pl.DataFrame:
    keep = [i for i in range(6) if classes == 3 or LABELS[i] != "neutral"]
    rows = [
        {"id": f"r{i:04d}",
         "text": f"{TEXTS[keep[i % len(keep)]]} {WORDS[i % 10]} {WORDS[(i * 7) % 10]}",
         "label": LABELS[keep[i % len(keep)]]}
        for i in range(offset, offset + n)
    ]
    return pl.DataFrame(rows)


def _fitted(*, classes: int = 3, char_ngrams: bool = False,
            embed: bool = False) -> tuple[KeptModels, np.ndarray | None]:
    """Two passes of fold models fitted on real-looking text (and sentence vectors)."""
    df = _frame(90, classes=classes)
    names = sorted(set(df.get_column("label")))
    y = np.array([names.index(v) for v in df.get_column("label")])
    y[[4, 10, 40]] = (y[[4, 10, 40]] + 1) % classes  # flips: the second pass leaves out
    vectors = (np.random.default_rng(3).normal(size=(90, 8)).astype(np.float32)
               if embed else None)
    fitted = out_of_fold(df, y, text_columns=["text"], folds=3, keep_models=True,
                         char_ngrams=char_ngrams, embeddings=vectors,
                         leave_out=lambda p: p[np.arange(len(y)), y] < 0.34)
    assert fitted.kept is not None and len(fitted.kept.passes) == 2
    new_vectors = (np.random.default_rng(4).normal(size=(15, 8)).astype(np.float32)
                   if embed else None)
    return fitted.kept, new_vectors


def _rows(n: int) -> pl.DataFrame:
    return pl.DataFrame({"id": [f"r{i}" for i in range(n)], "h": list(range(n)),
                         "c0": [0.5] * n, "c1": [0.5] * n},
                        schema_overrides={"h": pl.UInt64, "c0": pl.Float32,
                                          "c1": pl.Float32}).with_columns(
        pl.lit("run-a").alias("scored_in"))


def _save(store: Path, models: KeptModels, run_id: str = "run-a") -> None:
    kept_models.save_state(store, "ds", key="k", run_id=run_id, rows=_rows(4),
                           classes=["a", "b"], models=models, models_from=run_id,
                           trained_rows=4, trained_at=WHEN)


# --- the format before coef.npy, as the code before it wrote and read it ---------------

def _old_model_frames(kept: KeptModels) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    v = kept.vocabulary
    vocab = kept_models._model_arrays(kept)[0]["vocabulary"]  # the same in both formats
    coef: dict[str, Any] = {}
    embed: dict[str, Any] = {}
    info: list[list[dict[str, Any]]] = []
    for p, models in enumerate(kept.passes):
        info.append([])
        for f, m in enumerate(models):
            for r in range(m.coef.shape[0]):
                coef[f"p{p}f{f}r{r}"] = m.coef[r].astype(np.float32)
                if m.embed_coef is not None:
                    embed[f"p{p}f{f}r{r}"] = m.embed_coef[r].astype(np.float32)
            info[p].append({
                "rows": int(m.coef.shape[0]), "classes": m.classes.tolist(),
                "intercept": m.intercept.tolist(),
                "embed_intercept": m.embed_intercept.tolist()
                if m.embed_intercept is not None else None,
            })
    frames = {"vocabulary": vocab, "coef": pl.DataFrame(coef)}
    if embed:
        frames["embed"] = pl.DataFrame(embed)
    meta = {"seed": v.seed, "char_ngrams": v.char_columns is not None, "models": info,
            "n_classes": kept.n_classes, "average": kept.average, "embeddings": bool(embed),
            "flagging": kept.flagging}
    return frames, meta


def _save_old(store: Path, models: KeptModels, run_id: str = "run-a") -> None:
    frames, meta = _old_model_frames(models)
    meta = {"format": 1, "classes": ["a", "b"], "models_from": run_id, "trained_rows": 4,
            "trained_at": WHEN.isoformat(), **meta}
    lake.write_cached(store / "cache/ds/label_models" / f"k-{run_id}",
                      {"rows": _rows(4), **frames}, meta)


def _old_load(store: Path, run_id: str = "run-a") -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Each model's coef and embed_coef as the loader before coef.npy made them."""
    unit = store / "cache/ds/label_models" / f"k-{run_id}"
    coef = pl.read_parquet(unit / "coef.parquet")
    embed = (pl.read_parquet(unit / "embed.parquet") if (unit / "embed.parquet").exists()
             else None)
    cached = lake.read_cached(unit, [])
    assert cached is not None
    models: list[list[dict[str, Any]]] = cached[1]["models"]  # type: ignore[assignment]
    out = []
    for p, folds in enumerate(models):
        for f, info in enumerate(folds):
            rows = [f"p{p}f{f}r{r}" for r in range(int(info["rows"]))]
            out.append((coef.select(rows).to_numpy().T.astype(np.float64),
                        embed.select(rows).to_numpy().T.astype(np.float64)
                        if embed is not None else None))
    return out


def _models(kept: KeptModels) -> list[FoldModel]:
    return [m for ms in kept.passes for m in ms]


CASES = [pytest.param({}, id="3-classes"), pytest.param({"char_ngrams": True}, id="char"),
         pytest.param({"classes": 2}, id="2-classes"), pytest.param({"embed": True}, id="embed")]


@pytest.mark.parametrize("case", CASES)
def test_models_come_back_as_the_earlier_format_gave_them(tmp_path: Path,
                                                          case: dict[str, Any]) -> None:
    fitted, vectors = _fitted(**case)
    _save(tmp_path / "new", fitted)
    _save_old(tmp_path / "old", fitted)
    unit = tmp_path / "new/cache/ds/label_models/k-run-a"
    assert (unit / "coef.npy").is_file() and not (unit / "coef.parquet").exists()
    assert (unit / "embed.npy").is_file() == bool(case.get("embed"))
    new = kept_models.load_models(tmp_path / "new", "ds", key="k", run_id="run-a")
    old = kept_models.load_models(tmp_path / "old", "ds", key="k", run_id="run-a")
    assert new is not None and old is not None
    before = _old_load(tmp_path / "old")
    for kept in (new, old):
        assert (kept.n_classes, kept.average, kept.flagging) == (
            fitted.n_classes, fitted.average, fitted.flagging)
        v, w = kept.vocabulary, fitted.vocabulary
        assert v.seed == w.seed and np.array_equal(v.word_columns, w.word_columns)
        assert np.array_equal(v.word_idf, w.word_idf)
        assert (v.char_columns is None) == (w.char_columns is None)
        if v.char_columns is not None and w.char_columns is not None:
            assert np.array_equal(v.char_columns, w.char_columns)
        assert [len(p) for p in kept.passes] == [len(p) for p in fitted.passes]
        for m, fit, (coef, embed) in zip(_models(kept), _models(fitted), before, strict=True):
            # the values the earlier loader gave (float32 written, float64 read), exactly
            assert m.coef.dtype == np.float64 and np.array_equal(m.coef, coef)
            assert np.array_equal(m.coef, fit.coef.astype(np.float32).astype(np.float64))
            assert np.array_equal(m.classes, fit.classes) and m.classes.dtype == np.int64
            assert np.array_equal(m.intercept, fit.intercept)
            if embed is None:
                assert m.embed_coef is None and m.embed_intercept is None
            else:
                assert m.embed_coef is not None and m.embed_intercept is not None
                assert m.embed_coef.dtype == np.float64 and np.array_equal(m.embed_coef, embed)
                assert m.embed_coef.flags.c_contiguous  # as fitted (a dense BLAS product)
                assert fit.embed_intercept is not None
                assert np.array_equal(m.embed_intercept, fit.embed_intercept)
    for m in _models(new):  # the scoring's product reads coef.T as it is
        assert m.coef.T.flags.c_contiguous
    # new rows score to the same bits from either unit and from the earlier loader's arrays
    df = _frame(15, offset=500, classes=case.get("classes", 3))
    ids = df.get_column("id")
    earlier = KeptModels(fitted.vocabulary, [
        [FoldModel(m.classes, coef, m.intercept, embed, m.embed_intercept)
         for m, (coef, embed) in zip(ms, before[p * len(ms):(p + 1) * len(ms)], strict=True)]
        for p, ms in enumerate(fitted.passes)], fitted.n_classes, fitted.average)
    want = score_with_kept(df, earlier, ids=ids, text_columns=["text"], embeddings=vectors)
    for kept in (new, old):
        got = score_with_kept(df, kept, ids=ids, text_columns=["text"], embeddings=vectors)
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_a_damaged_or_short_coef_file_means_the_models_are_gone(tmp_path: Path) -> None:
    fitted, _ = _fitted()
    _save(tmp_path, fitted)
    unit = tmp_path / "cache/ds/label_models/k-run-a"
    path = unit / "coef.npy"
    whole = path.read_bytes()
    assert kept_models.load_models(tmp_path, "ds", key="k", run_id="run-a") is not None
    path.write_bytes(whole[: len(whole) - 100])  # truncated
    assert kept_models.load_models(tmp_path, "ds", key="k", run_id="run-a") is None
    np.save(path, np.zeros(12, dtype=np.float32))  # readable, not what the metadata says
    assert kept_models.load_models(tmp_path, "ds", key="k", run_id="run-a") is None
    path.unlink()
    assert kept_models.load_models(tmp_path, "ds", key="k", run_id="run-a") is None
    # the unit's rows are still read (a night then trains again: models "gone")
    assert kept_models.latest_rows(tmp_path, "ds", key="k") is not None


def test_a_unit_with_its_arrays_syncs_through_a_remote_store(tmp_path: Path) -> None:
    fitted, _ = _fitted(embed=True)
    local = tmp_path / "local"
    _save(local, fitted)
    remote = open_remote(f"file://{tmp_path / 'remote'}")
    push(remote, local, "ds")
    fresh = tmp_path / "fresh"
    pull(remote, fresh, "ds")
    unit = Path("cache/ds/label_models/k-run-a")
    for name in ("coef.npy", "embed.npy", "vocabulary.parquet", "rows.parquet", "_done.json"):
        assert (fresh / unit / name).read_bytes() == (local / unit / name).read_bytes()
    back = kept_models.load_models(fresh, "ds", key="k", run_id="run-a")
    here = kept_models.load_models(local, "ds", key="k", run_id="run-a")
    assert back is not None and here is not None
    for a, b in zip(_models(back), _models(here), strict=True):
        assert np.array_equal(a.coef, b.coef) and a.embed_coef is not None
        assert b.embed_coef is not None and np.array_equal(a.embed_coef, b.embed_coef)


def test_cached_arrays_round_trip_and_refuse_what_is_not_there(tmp_path: Path) -> None:
    unit = tmp_path / "cache/ds/kind/key"
    values = np.arange(7, dtype=np.float32)
    lake.write_cached(unit, {}, {"n": 7}, arrays={"a": values})
    got = lake.read_cached_arrays(unit, ["a"])
    assert got is not None and got["a"].dtype == np.float32 and np.array_equal(got["a"], values)
    assert lake.read_cached_arrays(unit, ["a", "b"]) is None  # one missing
    assert lake.read_cached_arrays(tmp_path / "nowhere", ["a"]) is None  # no unit
    (unit / lake.CACHE_MARKER).unlink()
    assert lake.read_cached_arrays(unit, ["a"]) is None  # incomplete
