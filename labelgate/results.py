"""The shape every stage result shares: gate metrics and report sections.

A stage's typed result (e.g. `steps.LabelIssuesOutcome`, `tasks.agreement.AgreementOutcome`)
carries its own tables plus `metrics` (flat ``stage.metric`` names the gate reads) and
`sections()` (the report.json entries it contributes, by key). The flow keeps every such
result in declaration order (`labelgate.dag`), so the metrics stage gathers metrics and
the report its sections without knowing which stages ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from checks.contract import ContractResult
from labelgate.spec import Spec


@runtime_checkable
class StageResult(Protocol):
    """What the metrics and report stages read from a stage's result."""

    @property
    def metrics(self) -> Mapping[str, float]: ...

    def sections(self) -> dict[str, Any]: ...


def gather_metrics(results: Iterable[StageResult]) -> dict[str, float]:
    """Every result's metrics, merged in order (a later result's name wins)."""
    out: dict[str, float] = {}
    for r in results:
        out.update(r.metrics)
    return out


def gather_sections(results: Iterable[StageResult]) -> dict[str, Any]:
    """Every result's report sections, merged in order."""
    out: dict[str, Any] = {}
    for r in results:
        out.update(r.sections())
    return out


def brief_columns(spec: Spec) -> list[str]:
    """The valid rows' columns a contract in brief keeps: the id and label (what the
    metrics and report count by), the group and the columns the publish filter names
    (what the splits read besides, `labelgate.dag.lean_splits`)."""
    clauses = spec.publish.filter_clauses() if spec.publish is not None else ()
    named = (spec.columns.id, spec.columns.label, spec.columns.group,
             *(c.column for c in clauses))
    return [c for c in dict.fromkeys(named) if c is not None]


def brief(value: Any, *, spec: Spec) -> Any:
    """`value` in brief: its ``brief()`` when it has one; a `ContractResult` with only the
    `brief_columns` of its valid rows; any other value as it is."""
    if isinstance(value, ContractResult):
        keep = [c for c in brief_columns(spec) if c in value.valid.columns]
        return replace(value, valid=value.valid.select(keep)) if keep else value
    method = getattr(value, "brief", None)
    return method() if callable(method) else value
