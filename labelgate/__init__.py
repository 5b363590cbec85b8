"""labelgate: a declarative data-quality pipeline for labeled datasets that feed fine-tunes.

This package is the library layer: pure functions over polars, DuckDB and Arrow, with no
Prefect import, so every stage is usable and testable without an orchestrator. The
Prefect flow (``flows/``) and its thin tasks (``tasks/``) wrap it.

Where things are
----------------
``labelgate.spec``
    The pydantic spec model: `load_spec`, `parse_spec`, `Spec`, `json_schema`.
``labelgate.dag``
    The stage declaration `STAGES` that the flow walks, the CLI lists and the report
    follows.
``labelgate.results``
    `StageResult`: what every stage's typed result carries (metrics, report sections).
``labelgate.gate``
    The one registry of gate checks (`GATE_CHECKS`) and `evaluate_gate`.
``labelgate.store``
    The store layer: lake, warehouse, caches, published versions, remote, run context,
    locks; `RunStore` is the one object the tasks get.
``labelgate.stages``
    One module or subpackage per stage: ``ingest``, ``agreement``, ``label_issues``,
    ``dedup``, ``splits``, ``publish``, ``review``, ``instructions``; ``steps`` holds
    the spec-driven glue the tasks call.
``labelgate.report``
    The report: one view model rendered as report.md and report.html, and report.json's
    model and JSON Schema.

The names below are imported on first use, so ``import labelgate`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from labelgate.dag import STAGES, Stage
    from labelgate.gate import GATE_CHECKS, GateVerdict, evaluate_gate
    from labelgate.results import StageResult
    from labelgate.spec import Spec, json_schema, load_spec, parse_spec
    from labelgate.stages.agreement.core import AgreementReport, compute_agreement
    from labelgate.stages.dedup import find_duplicates
    from labelgate.stages.label_issues.detect import LabelIssuesResult, find_label_issues
    from labelgate.stages.splits import assign_splits
    from labelgate.store import RunStore

_EXPORTS = {
    "STAGES": "labelgate.dag", "Stage": "labelgate.dag",
    "GATE_CHECKS": "labelgate.gate", "GateVerdict": "labelgate.gate",
    "evaluate_gate": "labelgate.gate",
    "StageResult": "labelgate.results",
    "Spec": "labelgate.spec", "json_schema": "labelgate.spec", "load_spec": "labelgate.spec",
    "parse_spec": "labelgate.spec",
    "AgreementReport": "labelgate.stages.agreement.core",
    "compute_agreement": "labelgate.stages.agreement.core",
    "find_duplicates": "labelgate.stages.dedup",
    "LabelIssuesResult": "labelgate.stages.label_issues.detect",
    "find_label_issues": "labelgate.stages.label_issues.detect",
    "assign_splits": "labelgate.stages.splits",
    "RunStore": "labelgate.store",
}
__all__ = [
    "GATE_CHECKS", "STAGES", "AgreementReport", "GateVerdict", "LabelIssuesResult",
    "RunStore", "Spec", "Stage", "StageResult", "assign_splits", "compute_agreement",
    "evaluate_gate", "find_duplicates", "find_label_issues", "json_schema", "load_spec",
    "parse_spec",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labelgate' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
