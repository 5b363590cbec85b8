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
  ``coef.parquet`` (one column per pass, fold and class row, d rows) and, with sentence
  embeddings, ``embed.parquet``; the intercepts and class codes go to the marker's metadata,
  with the cut-offs its flags were cut at (``flagging``: `labelgate.stages.label_issues.cutoffs`).
  A run that built on kept models names that run in ``models_from`` instead.

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
import polars as pl

from labelgate.stages.label_issues.incremental import KeptRows
from labelgate.stages.label_issues.models import FoldModel, KeptModels, TextVocabulary
from labelgate.store import lake

__all__ = ["KIND", "MAX_PARTS", "latest_rows", "load_models", "save_state"]

KIND = "label_models"
_FORMAT = 1
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
    """The fold models run ``run_id`` kept under ``key``, or None when they are gone."""
    names = ["vocabulary", "coef"]
    unit = _unit(store, dataset, key, run_id)
    cached = lake.read_cached(unit, names)
    if cached is None:
        return None
    frames, meta = cached
    embed = None
    if meta.get("embeddings"):
        more = lake.read_cached(unit, ["embed"])
        if more is None:
            return None
        embed = more[0]["embed"]
    return _models_from_frames(frames["vocabulary"], frames["coef"], embed, meta)


def _models_from_frames(vocab: pl.DataFrame, coef: pl.DataFrame, embed: pl.DataFrame | None,
                        meta: dict[str, Any]) -> KeptModels:
    """`KeptModels` back from its frames and metadata (`_model_frames`)."""
    def block(name: str) -> tuple[Any, Any]:
        part = vocab.filter(pl.col("block") == name)
        return (part.get_column("column").to_numpy().astype(np.int64),
                part.get_column("idf").to_numpy().astype(np.float64))

    word_columns, word_idf = block("word")
    char_columns, char_idf = block("char") if meta["char_ngrams"] else (None, None)
    vocabulary = TextVocabulary(int(meta["seed"]), word_columns, word_idf, char_columns,
                                char_idf)
    passes: list[list[FoldModel]] = []
    for p, folds in enumerate(meta["models"]):
        models = []
        for f, info in enumerate(folds):
            rows = [f"p{p}f{f}r{r}" for r in range(int(info["rows"]))]
            models.append(FoldModel(
                np.asarray(info["classes"], dtype=np.int64),
                coef.select(rows).to_numpy().T.astype(np.float64),
                np.asarray(info["intercept"], dtype=np.float64),
                embed.select(rows).to_numpy().T.astype(np.float64) if embed is not None
                else None,
                np.asarray(info["embed_intercept"], dtype=np.float64) if embed is not None
                else None,
            ))
        passes.append(models)
    return KeptModels(vocabulary, passes, int(meta["n_classes"]), bool(meta["average"]),
                      flagging=meta.get("flagging"))


def _model_frames(kept: KeptModels) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """The frames and metadata `_models_from_frames` reads back."""
    v = kept.vocabulary
    blocks = [("word", v.word_columns, v.word_idf)]
    if v.char_columns is not None and v.char_idf is not None:
        blocks.append(("char", v.char_columns, v.char_idf))
    vocab = pl.concat([
        pl.DataFrame({"block": [name] * len(cols), "column": cols, "idf": idf},
                     schema={"block": pl.String, "column": pl.Int64, "idf": pl.Float64})
        for name, cols, idf in blocks
    ])
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
    if models is not None:
        model_frames, model_meta = _model_frames(models)
        frames.update(model_frames)
        meta.update(model_meta)
    lake.write_cached(_unit(store, dataset, key, run_id), frames, meta)
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
