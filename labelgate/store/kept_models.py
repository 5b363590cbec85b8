"""The label-issue stage's kept fold models and per-row probabilities, for nights that cost
what is new (`labelgate.stages.label_issues.incremental`).

Each run of the built-in text model writes one cache unit,
``cache/<dataset>/label_models/<key>-<run_id>/`` (`labelgate.store.lake` writes it, marker
last; a remote store syncs it like any cache unit):

* ``rows.parquet``: every row it scored: id, h (the hash of its id, label and text), the
  probabilities (c0, c1, ... in class order), ``scored_in`` (the run that scored it) and
  ``flag`` (whether the model flagged it, before reviews and budgets). A night whose rows
  are the rows it read (`latest_rows`), unchanged and first, then new ones writes only the
  new ones, and names the unit it read in ``rows_before``: its rows are that unit's (with
  that unit's ``rows_before``, and so on) followed by its own. Every `MAX_PARTS` nights the
  rows are written whole again; a unit whose chain is broken is not used;
* a run that trained also writes its models: ``vocabulary.parquet`` (block, column, idf),
  ``coef.npy`` (float32, one dimension: each pass's fold models in turn, a model's (c, d)
  coefficients stored transposed, d rows of c) and, with sentence embeddings, ``embed.npy``
  (the same for the embedding models); the marker's metadata holds d (``features``,
  ``embed_features``), the intercepts and class codes, and the cut-offs its flags were cut at
  (``flagging``: `labelgate.stages.label_issues.cutoffs`). A night reads the coefficients in
  one piece and makes them float64 in one pass, each model a view of its contiguous block,
  already in the order the scoring's product reads it (`_models_from_arrays`). Units written
  before (``coef.parquet`` and ``embed.parquet``: one float32 column per pass, fold and
  class row) are still read, the same values (`_models_from_frames`). A run that built on
  kept models names that run in ``models_from`` instead.

``key`` is a hash of the settings the models depend on (`models_key`), so a change of any
of them finds nothing kept and trains again. Only the newest unit of a key (with the units
holding the earlier parts of its rows, and the unit holding its models) is kept; older ones
are removed when a new one is written.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from labelgate.stages.label_issues.incremental import KeptRows
from labelgate.stages.label_issues.models import FoldModel, KeptModels, TextVocabulary
from labelgate.store import lake

__all__ = ["KIND", "MAX_PARTS", "latest_rows", "load_models", "save_state"]

KIND = "label_models"
_FORMAT = 1
_COEF_FILE = "npy"  # the metadata's ``coef_file`` of a unit whose models are coef.npy
MAX_PARTS = 30  # a key's kept rows are read from at most this many units


def _units(store: Path, dataset: str, key: str) -> list[Path]:
    """The complete units of ``key``, newest first."""
    return lake.cached_units(store, dataset, KIND, f"{key}-")


def _unit(store: Path, dataset: str, key: str, run_id: str) -> Path:
    return lake.cache_dir(store, dataset, KIND, f"{key}-{run_id}")


def latest_rows(store: Path, dataset: str, *, key: str) -> tuple[KeptRows, dict[str, Any]] | None:
    """The newest kept rows for ``key`` and their unit's metadata, or None."""
    for unit in _units(store, dataset, key):
        found = _read_rows(store, dataset, key, unit)
        if found is None:
            continue
        rows, meta, parts = found
        kept = KeptRows(
            rows=rows, classes=[str(c) for c in meta["classes"]],
            models_from=str(meta["models_from"]), trained_rows=int(meta["trained_rows"]),
            trained_at=datetime.fromisoformat(str(meta["trained_at"])), parts=parts,
        )
        return kept, meta
    return None


def _read_rows(store: Path, dataset: str, key: str, unit: Path
               ) -> tuple[pl.DataFrame, dict[str, Any], tuple[str, ...]] | None:
    """A unit's rows (those of the units it names in ``rows_before`` first), its metadata
    and the runs of the units read, oldest first; None when one is missing or unreadable."""
    frames: list[pl.DataFrame] = []
    runs: list[str] = []
    newest: dict[str, Any] | None = None
    while True:
        cached = lake.read_cached(unit, ["rows"])
        if cached is None:
            return None
        found, meta = cached
        if meta.get("format") != _FORMAT:
            return None
        newest = newest if newest is not None else dict(meta)
        frames.append(found["rows"])
        runs.append(unit.name[len(key) + 1:])
        before = meta.get("rows_before")
        if before is None:
            break
        if len(runs) >= MAX_PARTS or str(before) in runs:
            return None
        unit = _unit(store, dataset, key, str(before))
    frames.reverse()
    runs.reverse()
    rows = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
    return rows, newest, tuple(runs)


def load_models(store: Path, dataset: str, *, key: str, run_id: str) -> KeptModels | None:
    """The fold models run ``run_id`` kept under ``key``, or None when they are gone (or
    unreadable: the run trains again)."""
    unit = _unit(store, dataset, key, run_id)
    cached = lake.read_cached(unit, ["vocabulary"])
    if cached is None:
        return None
    frames, meta = cached
    vocab = frames["vocabulary"]
    embeddings = bool(meta.get("embeddings"))
    if meta.get("coef_file") == _COEF_FILE:
        arrays = lake.read_cached_arrays(unit, ["coef", "embed"] if embeddings else ["coef"])
        if arrays is None:
            return None
        return _models_from_arrays(vocab, arrays["coef"], arrays.get("embed"), meta)
    # a unit written before coef.npy: the coefficients as Parquet columns
    old = lake.read_cached(unit, ["coef", "embed"] if embeddings else ["coef"])
    if old is None:
        return None
    return _models_from_frames(vocab, old[0]["coef"], old[0].get("embed"), meta)


def _vocabulary(vocab: pl.DataFrame, meta: dict[str, Any]) -> TextVocabulary:
    def block(name: str) -> tuple[Any, Any]:
        part = vocab.filter(pl.col("block") == name)
        return (part.get_column("column").to_numpy().astype(np.int64),
                part.get_column("idf").to_numpy().astype(np.float64))

    word_columns, word_idf = block("word")
    char_columns, char_idf = block("char") if meta["char_ngrams"] else (None, None)
    return TextVocabulary(int(meta["seed"]), word_columns, word_idf, char_columns, char_idf)


def _models_from_arrays(vocab: pl.DataFrame, coef: npt.NDArray[np.float32],
                        embed: npt.NDArray[np.float32] | None,
                        meta: dict[str, Any]) -> KeptModels | None:
    """`KeptModels` back from its arrays and metadata (`_model_arrays`); None when an array
    does not hold what the metadata says (a damaged unit: the run trains again).

    ``coef`` is made float64 in one pass, and each model's ``coef`` (c, d) is its contiguous
    (d, c) block of that copy, transposed (a view in Fortran order): the product
    ``x @ coef.T`` reads it as it is (no copy per scoring call). The values are the
    float32 values written, as `_models_from_frames` gives them. The embedding models'
    coefficients stay in C order (a dense product: the layout can change BLAS's summation
    order)."""
    d = int(meta["features"])
    d_embed = int(meta["embed_features"]) if embed is not None else 0
    sizes = [int(info["rows"]) for folds in meta["models"] for info in folds]
    if (coef.ndim != 1 or coef.size != d * sum(sizes)
            or (embed is not None and (embed.ndim != 1 or embed.size != d_embed * sum(sizes)))):
        return None
    coef64 = coef.astype(np.float64)
    at = 0
    passes: list[list[FoldModel]] = []
    for folds in meta["models"]:
        models = []
        for info in folds:
            c = int(info["rows"])
            models.append(FoldModel(
                np.asarray(info["classes"], dtype=np.int64),
                coef64[at * d:(at + c) * d].reshape(d, c).T,
                np.asarray(info["intercept"], dtype=np.float64),
                # C order, as fitted: scikit-learn's dense product reads it (BLAS)
                np.ascontiguousarray(embed[at * d_embed:(at + c) * d_embed]
                                     .reshape(d_embed, c).T, dtype=np.float64)
                if embed is not None else None,
                np.asarray(info["embed_intercept"], dtype=np.float64) if embed is not None
                else None,
            ))
            at += c
        passes.append(models)
    return KeptModels(_vocabulary(vocab, meta), passes, int(meta["n_classes"]),
                      bool(meta["average"]), flagging=meta.get("flagging"))


def _models_from_frames(vocab: pl.DataFrame, coef: pl.DataFrame, embed: pl.DataFrame | None,
                        meta: dict[str, Any]) -> KeptModels:
    """`KeptModels` back from the frames of a unit written before ``coef.npy``: one float32
    column per pass, fold and class row (``p{p}f{f}r{r}``, d rows). The columns are made one
    float64 (d, columns) array in one pass, and each model's ``coef`` (c, d) is its columns
    transposed (a view, in C order as this format always gave them; in place of a select and
    a cast per model): the same values."""
    names = [[[f"p{p}f{f}r{r}" for r in range(int(info["rows"]))]
              for f, info in enumerate(folds)] for p, folds in enumerate(meta["models"])]
    order = [name for folds in names for rows in folds for name in rows]
    # Fortran order: each column contiguous, so a model's columns transposed are C order
    coef_all = coef.select(order).to_numpy(order="fortran").astype(np.float64)
    embed_all = (embed.select(order).to_numpy(order="fortran").astype(np.float64)
                 if embed is not None else None)
    at = 0
    passes: list[list[FoldModel]] = []
    for folds, infos in zip(names, meta["models"], strict=True):
        models = []
        for rows, info in zip(folds, infos, strict=True):
            c = len(rows)
            models.append(FoldModel(
                np.asarray(info["classes"], dtype=np.int64),
                coef_all[:, at:at + c].T,
                np.asarray(info["intercept"], dtype=np.float64),
                embed_all[:, at:at + c].T if embed_all is not None else None,
                np.asarray(info["embed_intercept"], dtype=np.float64) if embed_all is not None
                else None,
            ))
            at += c
        passes.append(models)
    return KeptModels(_vocabulary(vocab, meta), passes, int(meta["n_classes"]),
                      bool(meta["average"]), flagging=meta.get("flagging"))


def _model_arrays(kept: KeptModels) -> tuple[dict[str, pl.DataFrame],
                                            dict[str, npt.NDArray[np.float32]], dict[str, Any]]:
    """The frames, arrays and metadata `_models_from_arrays` reads back: each model's
    coefficients (c, d) transposed, as float32, one model after the other."""
    v = kept.vocabulary
    blocks = [("word", v.word_columns, v.word_idf)]
    if v.char_columns is not None and v.char_idf is not None:
        blocks.append(("char", v.char_columns, v.char_idf))
    vocab = pl.concat([
        pl.DataFrame({"block": [name] * len(cols), "column": cols, "idf": idf},
                     schema={"block": pl.String, "column": pl.Int64, "idf": pl.Float64})
        for name, cols, idf in blocks
    ])
    models = [m for ms in kept.passes for m in ms]
    info = [[{
        "rows": int(m.coef.shape[0]), "classes": m.classes.tolist(),
        "intercept": m.intercept.tolist(),
        "embed_intercept": m.embed_intercept.tolist()
        if m.embed_intercept is not None else None,
    } for m in ms] for ms in kept.passes]
    arrays = {"coef": _blocks([m.coef for m in models])}
    embeds = [m.embed_coef for m in models if m.embed_coef is not None]
    if embeds:
        arrays["embed"] = _blocks(embeds)
    meta = {"seed": v.seed, "char_ngrams": v.char_columns is not None, "models": info,
            "n_classes": kept.n_classes, "average": kept.average, "embeddings": bool(embeds),
            "flagging": kept.flagging, "coef_file": _COEF_FILE,
            "features": int(models[0].coef.shape[1]) if models else 0,
            "embed_features": int(embeds[0].shape[1]) if embeds else None}
    return {"vocabulary": vocab}, arrays, meta


def _blocks(coefs: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float32]:
    """Each (c, d) array transposed, as float32, one after the other in one dimension."""
    if not coefs:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([np.ascontiguousarray(c.T, dtype=np.float32).ravel() for c in coefs])


def save_state(
    store: Path,
    dataset: str,
    *,
    key: str,
    run_id: str,
    rows: pl.DataFrame,
    classes: list[str],
    models: KeptModels | None,
    models_from: str,
    trained_rows: int,
    trained_at: datetime,
    extra: Mapping[str, Any] | None = None,
    kept: KeptRows | None = None,
) -> None:
    """Write this run's unit (its rows; its models when it trained: ``models``; ``extra``
    in the metadata), then remove the older units of ``key`` that nothing refers to any
    more. ``kept``: the rows this run read (`latest_rows`); when ``rows`` are those rows,
    unchanged and first, the unit holds only the rows after them (`_added_to`)."""
    meta: dict[str, Any] = {
        **(extra or {}), "format": _FORMAT, "classes": classes, "models_from": models_from,
        "trained_rows": trained_rows, "trained_at": trained_at.isoformat(),
    }
    parts: tuple[str, ...] = (run_id,)
    if kept is not None and _added_to(rows, kept, run_id=run_id):
        meta["rows_before"] = kept.parts[-1]
        parts = (*kept.parts, run_id)
        rows = rows.slice(kept.rows.height)
    frames: dict[str, pl.DataFrame] = {"rows": rows}
    arrays: dict[str, npt.NDArray[np.float32]] = {}
    if models is not None:
        model_frames, arrays, model_meta = _model_arrays(models)
        frames.update(model_frames)
        meta.update(model_meta)
    lake.write_cached(_unit(store, dataset, key, run_id), frames, meta, arrays=arrays)
    keep = {_unit(store, dataset, key, run) for run in (*parts, models_from)}
    for unit in _units(store, dataset, key):
        if unit not in keep:
            shutil.rmtree(unit, ignore_errors=True)


def _added_to(rows: pl.DataFrame, kept: KeptRows, *, run_id: str) -> bool:
    """Whether ``rows`` are ``kept.rows`` (read from a store, not from this run's own
    unit, in fewer than `MAX_PARTS` units), unchanged and first, then others."""
    n = kept.rows.height
    return (bool(kept.parts) and run_id not in kept.parts and len(kept.parts) < MAX_PARTS
            and rows.schema == kept.rows.schema and rows.height >= n
            and rows.head(n).equals(kept.rows))
