"""Reusing the label-issue stage's results when its inputs have not changed.

The stage is the expensive one (K models over every row). Its inputs are the valid rows'
id, label and model columns, the predictions or annotations it read, and the spec's
`label_issues` and `columns` sections: their fingerprint is stored beside the stage's
outputs in the run's report folder. A later run with the same fingerprint (a night with no
new or changed batches) loads those outputs instead of training again, and its report says
which run they came from. Any change of data or settings gives a new fingerprint, so a
reused result is always the one the stage would compute again (it is deterministic).

Row hashes come from polars (`hash_rows`), whose values are stable within one polars
version: the version is part of the fingerprint, so an upgrade recomputes once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from labelgate.spec import Spec
from labelgate.stages.label_issues import embeddings
from labelgate.stages.label_issues.detect import LabelIssuesResult

FINGERPRINT_FILE = "label_issues.fingerprint"
SAVED_FILE = "label_issues.saved.json"
# the run's public outputs double as what a later run reuses (one copy of each)
TABLE_FILE = "label_issues.parquet"
PROBS_FILE = "probabilities.parquet"
PARQUET_LEVEL = 1  # zstd


@dataclass(frozen=True)
class SavedLabelIssues:
    result: LabelIssuesResult
    metrics: dict[str, float]
    section: dict[str, Any]
    run_id: str


def _frame_digest(frame: pl.DataFrame | None) -> bytes:
    if frame is None:
        return b"none"
    ordered = frame.select(sorted(frame.columns))
    rows = ordered.hash_rows(seed=0).to_numpy()
    return hashlib.sha256(rows.tobytes() + json.dumps(ordered.columns).encode()).digest()


def label_issues_fingerprint(
    valid: pl.DataFrame,
    *,
    spec: Spec,
    predictions: pl.DataFrame | None,
    annotations: pl.DataFrame | None,
) -> str:
    """A hash of everything the label-issue stage reads."""
    digest = hashlib.sha256(json.dumps(_settings(spec), sort_keys=True).encode())
    for part in (valid.select(model_columns(spec)), predictions, annotations):
        digest.update(_frame_digest(part))
    return digest.hexdigest()


def model_columns(spec: Spec) -> list[str]:
    """The columns the label-issue stage reads: id, label, text and feature columns."""
    cols = spec.columns
    return [c for c in [cols.id, cols.label, *cols.text, *cols.features] if c is not None]


def _settings(spec: Spec) -> dict[str, Any]:
    """The settings the stage's result depends on (`label_issues.refresh` only says when to
    train again, so it is left out)."""
    li = spec.label_issues
    return {
        "label_issues": li.model_dump(mode="json", exclude={"refresh"}) if li else None,
        "columns": model_columns(spec),
        # the predictions method reads the label column's contract isin (its classes)
        "label_isin": _label_isin(spec),
        # a local embedding model is a folder: its content, not its name, is the model
        "embedding_model": _embedding_model(spec),
        "polars": pl.__version__,
        "format": 2,
    }


def models_key(spec: Spec) -> str:
    """The key of the fold models a run keeps (`labelgate.store.kept_models`): a hash of
    the settings and of the model code's versions (scikit-learn, numpy). scikit-learn's
    version is its installed distribution's (what ``sklearn.__version__`` says), read
    without importing it: a night that scores with kept models never imports sklearn."""
    settings = {**_settings(spec), "sklearn": _sklearn_version(), "numpy": np.__version__,
                "kept_format": 1}
    if spec.label_issues is not None:  # what the report shows and flags, not the models
        settings["label_issues"] = spec.label_issues.model_dump(
            mode="json", exclude={"refresh", "top", "review_budget"})
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]


def _sklearn_version() -> str:
    """scikit-learn's version (``sklearn.__version__`` of a release), from its metadata."""
    from importlib.metadata import version

    return version("scikit-learn")


def _embedding_model(spec: Spec) -> str | None:
    li = spec.label_issues
    if li is None or li.embeddings is None or li.method == "predictions":
        return None
    folder = embeddings.check_model(li.embeddings.model, base_dir=spec.base_dir)
    return embeddings.model_identity(li.embeddings.model, folder)


def _label_isin(spec: Spec) -> list[str] | None:
    label = spec.columns.label
    column = spec.contract.get(label) if label is not None else None
    if column is None or column.isin is None:
        return None
    return sorted(str(v) for v in column.isin)


def write_outputs(folder: Path, result: LabelIssuesResult) -> None:
    """The run's per-row label issues (`label_issues.parquet`: id, given_label,
    suggested_label, label_quality, is_label_issue, rank, plus the CROWDLAB columns when
    there are annotations) and out-of-fold probabilities (`probabilities.parquet`: id and
    one column per class), ids as text. Written whole every run (readers open them as
    plain Parquet files), at zstd level 1: 2% larger than the default level 3, a third
    less CPU."""
    folder.mkdir(parents=True, exist_ok=True)
    as_text = pl.col("id").cast(pl.String)
    result.table.with_columns(as_text).write_parquet(folder / TABLE_FILE,
                                                     compression_level=PARQUET_LEVEL)
    result.probability_frame().with_columns(as_text).write_parquet(
        folder / PROBS_FILE, compression_level=PARQUET_LEVEL)


def save_label_issues(
    folder: Path,
    *,
    fingerprint: str,
    result: LabelIssuesResult,
    metrics: dict[str, float],
    section: dict[str, Any],
) -> None:
    """Write the outputs and what `find_saved` needs to rebuild the outcome; the
    fingerprint goes last (it marks the folder complete)."""
    write_outputs(folder, result)
    saved = {
        "method": result.method, "path": result.path, "classes": result.classes,
        "health_score": result.health_score, "metrics": metrics, "section": section,
        "noise_matrix": result.noise_matrix.to_dicts(),
        "per_class": result.per_class.to_dicts(),
        "annotators": result.annotators.to_dicts() if result.annotators is not None else None,
    }
    (folder / SAVED_FILE).write_text(json.dumps(saved, default=str))
    (folder / FINGERPRINT_FILE).write_text(fingerprint)


def find_saved(reports: Path, *, fingerprint: str) -> SavedLabelIssues | None:
    """The newest earlier run's saved outcome with this fingerprint, if any."""
    if not reports.is_dir():
        return None
    candidates = sorted(
        (d for d in reports.iterdir() if d.is_dir() and not d.is_symlink()), reverse=True
    )
    for folder in candidates:
        marker = folder / FINGERPRINT_FILE
        if not marker.is_file() or marker.read_text().strip() != fingerprint:
            continue
        try:
            saved = json.loads((folder / SAVED_FILE).read_text())
            table = pl.read_parquet(folder / TABLE_FILE)
            probs = pl.read_parquet(folder / PROBS_FILE)
        except (OSError, ValueError, pl.exceptions.PolarsError):
            continue  # an incomplete folder (a killed run): try an older one
        classes = [str(c) for c in saved["classes"]]
        matrix = (
            probs.select(classes).to_numpy().astype(np.float32)
            if all(c in probs.columns for c in classes) else None
        )
        result = LabelIssuesResult(
            method=saved["method"],
            path=saved["path"],
            classes=classes,
            table=table,
            noise_matrix=pl.DataFrame(saved["noise_matrix"]),
            health_score=float(saved["health_score"]),
            per_class=pl.DataFrame(saved["per_class"]),
            annotators=pl.DataFrame(saved["annotators"]) if saved["annotators"] else None,
            probabilities=matrix,
            filter_by=str(saved.get("section", {}).get("filter_by", "both")),
            joint_calibration=str(
                saved.get("section", {}).get("joint_calibration", "per_class")
            ),
            passes=int(saved.get("section", {}).get("passes", 1)),
            left_out=int(saved.get("section", {}).get("left_out", 0)),
        )
        metrics = {str(k): float(v) for k, v in saved["metrics"].items()}
        return SavedLabelIssues(result, metrics, dict(saved["section"]), folder.name)
    return None
