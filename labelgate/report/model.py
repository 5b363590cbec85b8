"""The shape of ``report.json``, as a pydantic model and its published JSON Schema.

`Report` types the fixed part every run writes (``labelgate.report.build_report``: dataset,
run, times, rows, sources, quarantine, classes, metrics, gate, paths) and the optional stage
sections, typed where their shape is small and stable (``review``, ``published``,
``leakage``, ``previous_runs_abandoned``) and ``dict[str, Any]`` where a stage owns a
larger, growing shape (``agreement``, ``label_issues``, ``duplicates``, ``splits``,
``sft``). Every model allows extra keys: a stage that adds one does not break validation,
and a consumer of an older schema still reads a newer report.

``report_json_schema()`` is the schema to publish next to the reports (for editors, data
catalogues and consumers in other languages); ``Report.model_validate(json.loads(...))``
checks a report.json in Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from labelgate.gate import CheckResult

__all__ = [
    "ClassCount",
    "Gate",
    "Leakage",
    "PreviousRuns",
    "Published",
    "Quarantine",
    "QuarantineByCheck",
    "QuarantineExample",
    "Report",
    "Review",
    "Rows",
    "Source",
    "report_json_schema",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Open(BaseModel):
    """A part of report.json: known keys typed, extra keys kept."""

    model_config = ConfigDict(extra="allow")


class Rows(_Open):
    """The row arithmetic: input = valid + quarantined + excluded (``balanced``)."""

    input: int = Field(ge=0)
    valid: int = Field(ge=0)
    quarantined: int = Field(ge=0)
    excluded: int = Field(0, ge=0)
    balanced: bool


class Source(_Open):
    """One input file (lake batch) of the run; the line counts are CSV's only."""

    source: str
    file: str
    batch: str
    rows: int = Field(ge=0)
    rejected: int = Field(ge=0, description="records that could not be parsed")
    reused: bool = Field(description="the lake already had this file: not ingested again")
    contract_cached: bool | None = Field(
        None, description="items only: the contract result came from the batch cache")
    lines: int | None = Field(None, ge=0, description="CSV: physical lines, header included")
    record_lines: int | None = Field(None, ge=0, description="CSV: lines inside records")
    blank_lines: int | None = Field(None, ge=0)
    rejected_lines: int | None = Field(None, ge=0, description="CSV: lines of rejected records")
    rejected_at: list[int] | None = Field(
        None, description="CSV: the first line numbers of rejected records")


class QuarantineByCheck(_Open):
    """Failing cells per (column, check), with one example reason."""

    column: str
    check: str
    failures: int = Field(ge=0)
    example: str | None = None


class QuarantineExample(_Open):
    """One failing cell (``checks.contract.QUARANTINE_SCHEMA``)."""

    source: str | None = None
    batch: str
    row: int | None = None
    id: str | None = None
    column: str
    check: str
    failure_value: str | None = None
    reason: str | None = None


class Quarantine(_Open):
    """Rows that failed the contract: how many, by column and check, the first cells."""

    rows: int = Field(ge=0)
    by_column_check: list[QuarantineByCheck]
    examples: list[QuarantineExample]


class ClassCount(_Open):
    """Valid rows of one class."""

    label: Any
    rows: int = Field(ge=0)


class Gate(_Open):
    """The gate verdict."""

    passed: bool
    checks: list[CheckResult]  # the dataclass the gate returns: one shape to keep
    summary: str


class Review(_Open):
    """Reviewer corrections applied this run (``labelgate.stages.review.CorrectionStats``)."""

    n_corrections: int | None = None
    n_ids_corrected: int | None = None
    n_changed: int | None = None
    n_confirmed: int | None = None
    n_not_in_valid: int | None = None
    n_stale: int | None = None
    reviewer_gold_accuracy: list[dict[str, Any]] = Field(default_factory=list)


class Published(_Open):
    """The dataset version this run published."""

    version: int
    path: str
    current: str | None = None
    rows: int = Field(ge=0)
    splits: dict[str, Any] = Field(default_factory=dict)


class Leakage(_Open):
    """Leakage across splits (``labelgate.stages.splits.leakage``): any count above 0 is a leak."""

    exact_pairs: int | None = None
    near_pairs: int | None = None
    clusters_across_splits: int | None = None
    groups_across_splits: int | None = None
    group_rows_across_splits: int | None = None
    total: int | None = None


class PreviousRuns(_Open):
    """Earlier runs found left running by a dead process."""

    count: int = Field(ge=0)
    runs: list[Any] = Field(default_factory=list)


class Report(_Open):
    """report.json: one pipeline run of one dataset."""

    model_config = ConfigDict(extra="allow", title="labelgate report")

    dataset: str
    run_id: str
    spec_path: str
    spec_hash: str
    started_at: datetime
    finished_at: datetime
    rows: Rows
    sources: list[Source]
    quarantine: Quarantine
    classes: list[ClassCount]
    metrics: dict[str, float | None]
    gate: Gate
    paths: dict[str, str]
    review: Review | None = None
    sft: dict[str, Any] | None = None
    agreement: dict[str, Any] | None = None
    label_issues: dict[str, Any] | None = None
    duplicates: dict[str, Any] | None = None
    leakage: Leakage | None = None
    splits: dict[str, Any] | None = None
    published: Published | None = None
    previous_runs_abandoned: PreviousRuns | None = None


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema of report.json (draft 2020-12).

    Returns
    -------
    dict[str, Any]
        `Report`'s schema (validation mode) with ``$schema`` set; write it with
        ``json.dumps`` to publish it.
    """
    return {"$schema": SCHEMA_DIALECT, **Report.model_json_schema()}
