"""The quality gate: one registry of named checks over run metrics.

Each stage contributes metrics (a flat name -> number mapping); the spec's `gate:` section
sets thresholds by check name; `evaluate_gate` compares them. A check whose metric was not
computed in a run fails with a reason (a threshold that cannot be verified is not a pass).

The registry lives in the library layer (not checks/) because the spec model validates
check names when it parses, before any data is read, and imports point down only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import polars as pl


@dataclass(frozen=True)
class GateCheck:
    """A named threshold on one metric. `kind` max: observed <= threshold; min: >=.

    ``dimension_metric``: task dimensions, the metric this check reads for one label
    dimension (``dimensions.<dimension>.<dimension_metric>``) when the spec sets it under
    ``gate.dimensions.<dimension>``; None: the check has no per-dimension form."""

    name: str
    metric: str
    kind: Literal["max", "min"]
    description: str
    lower: float = 0.0
    upper: float = math.inf
    dimension_metric: str | None = None

    def validate_threshold(self, threshold: float) -> None:
        if not (self.lower <= threshold <= self.upper) or math.isnan(threshold):
            raise ValueError(
                f"gate.{self.name} must be between {self.lower} and {self.upper}, got {threshold}"
            )

    def passes(self, observed: float, threshold: float) -> bool:
        if math.isnan(observed):
            return False
        return observed <= threshold if self.kind == "max" else observed >= threshold


GATE_CHECKS: dict[str, GateCheck] = {
    c.name: c
    for c in (
        GateCheck(
            "max_quarantine_rate",
            "quarantine_rate",
            "max",
            "share of input rows quarantined by the contract (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "min_rows_per_class",
            "min_rows_per_class",
            "min",
            "fewest valid rows of any label class",
            dimension_metric="min_rows_per_class",
        ),
        GateCheck("min_rows", "rows_valid", "min", "valid rows in total"),
        GateCheck(
            "max_rejected_lines",
            "rejected_lines",
            "max",
            "input lines in records the reader could not parse (a CSV record's every "
            "physical line, e.g. a broken quote's line; one per bad JSON line)",
        ),
        GateCheck(
            "min_krippendorff_alpha",
            "agreement.krippendorff_alpha",
            "min",
            "Krippendorff's alpha at the agreement level (-1..1)",
            lower=-1.0,
            upper=1.0,
            dimension_metric="krippendorff_alpha",
        ),
        GateCheck(
            "min_fleiss_kappa",
            "agreement.fleiss_kappa",
            "min",
            "Fleiss' kappa on the items with the modal label count (-1..1)",
            lower=-1.0,
            upper=1.0,
        ),
        GateCheck(
            "min_mean_cohen_kappa",
            "agreement.mean_cohen_kappa",
            "min",
            "mean Cohen's kappa over annotator pairs with enough shared items (-1..1)",
            lower=-1.0,
            upper=1.0,
            dimension_metric="mean_cohen_kappa",
        ),
        GateCheck(
            "min_percent_agreement",
            "agreement.percent_agreement",
            "min",
            "share of agreeing label pairs per item, averaged over items (0..1)",
            upper=1.0,
            dimension_metric="percent_agreement",
        ),
        GateCheck(
            "min_gwet_ac1",
            "agreement.gwet_ac1",
            "min",
            "Gwet's AC1 (-1..1)",
            lower=-1.0,
            upper=1.0,
        ),
        GateCheck(
            "min_annotator_gold_accuracy",
            "agreement.min_annotator_gold_accuracy",
            "min",
            "lowest gold accuracy of any annotator with enough gold items (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "max_flagged_annotators",
            "agreement.n_flagged_annotators",
            "max",
            "annotators flagged below the agreement section's thresholds",
        ),
        GateCheck(
            "max_label_issue_rate",
            "label_issues.rate",
            "max",
            "share of valid rows flagged as probable label errors (0..1)",
            upper=1.0,
            dimension_metric="label_issue_rate",
        ),
        GateCheck(
            "min_label_health",
            "label_issues.health_score",
            "min",
            "label health score (0..1): 1 - the estimated noise rate (label_issues."
            "joint_calibration: cleanlab gives cleanlab's overall label health score)",
            upper=1.0,
        ),
        GateCheck(
            "max_class_noise_rate",
            "label_issues.max_class_issue_rate",
            "max",
            "label-issue rate of the worst class (0..1)",
            upper=1.0,
            dimension_metric="max_class_issue_rate",
        ),
        GateCheck(
            "max_label_issue_rate_increase",
            "label_issues.rate_increase",
            "max",
            "label-issue rate minus the median of the last 10 passing runs (0 with no history)",
            lower=0.0,
            upper=1.0,
        ),
        GateCheck(
            "max_sft_quarantine_rate",
            "sft.quarantine_rate",
            "max",
            "share of instruction rows quarantined by the SFT checks (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "max_conflicting_responses",
            "sft.conflicting_rows",
            "max",
            "rows whose prompt has another, different response",
        ),
        GateCheck(
            "max_duplicate_rate",
            "dedup.duplicate_rate",
            "max",
            "share of valid rows that duplicate an earlier row (exact or near; 0..1)",
            upper=1.0,
        ),
        GateCheck(
            "max_split_leakage",
            "splits.leakage",
            "max",
            "duplicate pairs, clusters and groups that straddle splits",
        ),
        GateCheck(
            "min_test_rows_per_class",
            "splits.min_test_rows_per_class",
            "min",
            "fewest test rows of any class",
        ),
        GateCheck(
            "min_annotators_per_item",
            "agreement.min_labels_per_item",
            "min",
            "fewest labels (annotators) on any annotated item",
            dimension_metric="min_labels_per_item",
        ),
        GateCheck(
            "min_preference_agreement",
            "preference.percent_agreement",
            "min",
            "task preference: agreeing judgment pairs per pair judged twice or more, over "
            "a, b and tie, averaged (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "max_length_bias_share",
            "preference.length_bias_share",
            "max",
            "task preference: share of decided judgments whose chosen response has more "
            "whitespace tokens than the rejected one (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "max_contradiction_rate",
            "preference.contradiction_rate",
            "max",
            "task preference: share of pairs decided both ways by one annotator (or by rows "
            "without one) (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "max_identical_pair_rate",
            "preference.identical_pair_rate",
            "max",
            "task preference: share of judgments quarantined because chosen and rejected "
            "are identical (exact, normalised, near or within the token budget) (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "max_position_bias",
            "preference.max_position_bias",
            "max",
            "task preference: the largest share of one annotator's decided judgments for "
            "the same display position (first or second; 0.5..1; annotators with fewer "
            "than preference.min_annotator_judgments are left out)",
            lower=0.5,
            upper=1.0,
        ),
        GateCheck(
            "max_multilabel_issue_rate",
            "multilabel.issue_rate",
            "max",
            "task multilabel: share of valid rows flagged with probable tag errors (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "max_tag_issue_rate",
            "multilabel.max_tag_issue_rate",
            "max",
            "task multilabel: the largest share of rows where one tag is probably missing or "
            "wrongly added (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "min_rows_per_tag",
            "multilabel.min_rows_per_tag",
            "min",
            "task multilabel: fewest valid rows having any one tag",
        ),
        GateCheck(
            "min_masi_alpha",
            "multilabel.krippendorff_alpha_masi",
            "min",
            "task multilabel: Krippendorff's alpha of the annotators' tag sets with the MASI "
            "distance (-1..1)",
            lower=-1.0,
            upper=1.0,
        ),
        GateCheck(
            "min_tag_kappa",
            "multilabel.min_tag_kappa",
            "min",
            "task multilabel: the lowest per-tag Cohen's kappa (mean over annotator pairs; "
            "-1..1)",
            lower=-1.0,
            upper=1.0,
        ),
        GateCheck(
            "max_tag_share_deviation",
            "splits.max_tag_share_deviation",
            "max",
            "task multilabel: the largest gap between a tag's share of rows in a split and "
            "the split's fraction (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "max_flagged_token_rate",
            "spans.flagged_token_rate",
            "max",
            "task spans: share of tokens flagged as probably mislabeled (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "min_span_exact_f1",
            "spans.exact_f1",
            "min",
            "task spans: annotators' exact-match span F1, micro over types (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "min_span_overlap_f1",
            "spans.overlap_f1",
            "min",
            "task spans: annotators' overlap span F1, micro over types (0..1)",
            upper=1.0,
        ),
        GateCheck(
            "min_token_kappa",
            "spans.token_kappa",
            "min",
            "task spans: annotators' token-level Cohen's kappa over entity types (-1..1)",
            lower=-1.0,
            upper=1.0,
        ),
        GateCheck(
            "min_spans_per_type",
            "spans.min_spans_per_type",
            "min",
            "task spans: fewest valid spans of any entity type",
        ),
    )
}

AGREEMENT_PREFIX = "agreement."
DIMENSION_PREFIX = "dimensions."


def dimension_checks() -> list[str]:
    """The checks a spec may set per label dimension (``gate.dimensions.<dimension>``)."""
    return sorted(c.name for c in GATE_CHECKS.values() if c.dimension_metric is not None)


def gate_check(name: str) -> GateCheck | None:
    """The registered check called `name`, or None.

    ``dimensions.<dimension>.<check>`` (task dimensions: the spec's ``gate.dimensions``
    flattened) is the check ``<check>`` reading ``dimensions.<dimension>.<its
    dimension_metric>``; None when ``<check>`` has no per-dimension form."""
    if not name.startswith(DIMENSION_PREFIX):
        return GATE_CHECKS.get(name)
    dimension, _, check_name = name[len(DIMENSION_PREFIX):].rpartition(".")
    check = GATE_CHECKS.get(check_name)
    if not dimension or check is None or check.dimension_metric is None:
        return None
    return replace(check, name=name,
                   metric=f"{DIMENSION_PREFIX}{dimension}.{check.dimension_metric}")


def agreement_gate_metrics(metrics: Mapping[str, float | int | None]) -> dict[str, float]:
    """Agreement metrics under the `agreement.` prefix the registry reads; undefined ones
    (None or NaN) are left out so a threshold on them fails as "not computed"."""
    return {
        AGREEMENT_PREFIX + k: float(v)
        for k, v in metrics.items()
        if v is not None and not math.isnan(float(v))
    }


@dataclass(frozen=True)
class CheckResult:
    name: str
    metric: str
    observed: float | None
    threshold: float
    passed: bool
    message: str


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    checks: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        if not self.checks:
            return "gate passed (no thresholds set)"
        if self.passed:
            return f"gate passed ({len(self.checks)} checks)"
        return "gate failed: " + "; ".join(c.message for c in self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


HISTORY_WINDOW = 10
# metric -> derived metric comparing it with the median of the last passing runs
_VERSUS_HISTORY = {"label_issues.rate": "label_issues.rate_increase"}


def history_metrics(
    current: Mapping[str, float],
    history: Sequence[tuple[str, str, float]],
    *,
    window: int = HISTORY_WINDOW,
) -> dict[str, float]:
    """Metrics that compare this run with earlier ones.

    `history` is (run_id, metric, value) rows of earlier runs, oldest first (the
    metrics_history table). For each tracked metric: the current value minus the median over
    the last `window` runs whose gate passed (`<metric>_increase`), and how many runs the
    baseline has (`<metric>_baseline_runs`). With no passing run yet the increase is 0.
    """
    passed_runs = [run for run, metric, value in history if metric == "gate_passed" and value]
    recent = set(passed_runs[-window:])
    out: dict[str, float] = {}
    for metric, derived in _VERSUS_HISTORY.items():
        if metric not in current:
            continue
        base = [v for run, m, v in history if m == metric and run in recent]
        out[derived] = float(current[metric] - statistics.median(base)) if base else 0.0
        out[f"{derived}_baseline_runs"] = float(len(base))
    return out


def named(names: Sequence[object], *, one: str, many: str, limit: int = 3) -> str | None:
    """Who a gate value belongs to, for its message: ``"class 'neutral'"``, or
    ``"classes 'a', 'b'"`` (at most `limit` named, then how many more); None for none."""
    shown = sorted(str(n) for n in names)
    if not shown:
        return None
    text = ", ".join(repr(n) for n in shown[:limit])
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return f"{one if len(shown) == 1 else many} {text}{more}"


def smallest_class(counts: pl.DataFrame) -> str | None:
    """The class(es) with the fewest rows in `counts` (label, rows), named."""
    if counts.height == 0:
        return None
    low = counts.get_column("rows").min()
    return named(counts.filter(pl.col("rows") == low).get_column("label").to_list(),
                 one="class", many="classes")


def annotator_details(annotators: pl.DataFrame, metrics: Mapping[str, float]) -> dict[str, str]:
    """Who the agreement gate metrics belong to: the annotator(s) with the lowest gold
    accuracy (``gold_accuracy`` equal to the metric) and the flagged annotators."""
    out: dict[str, str] = {}
    low = metrics.get(AGREEMENT_PREFIX + "min_annotator_gold_accuracy")
    if low is not None and "gold_accuracy" in annotators.columns:
        who = annotators.filter((pl.col("gold_accuracy") - low).abs() < 1e-12)
        text = named(who.get_column("annotator").to_list(), one="annotator", many="annotators")
        if text:
            out[AGREEMENT_PREFIX + "min_annotator_gold_accuracy"] = text
    if "flagged" in annotators.columns:
        flagged = annotators.filter(pl.col("flagged")).get_column("annotator").to_list()
        text = named(flagged, one="annotator", many="annotators")
        if text:
            out[AGREEMENT_PREFIX + "n_flagged_annotators"] = text
    return out


def evaluate_gate(
    metrics: Mapping[str, float], thresholds: Mapping[str, float], *,
    details: Mapping[str, str] | None = None,
) -> GateVerdict:
    """Compare metrics against thresholds by registered check name.

    ``details``: metric name -> who the value belongs to (``"class 'neutral'"``, an
    annotator), added to that check's message so a failure names its class or annotator.
    """
    details = details or {}
    results = []
    for name, threshold in thresholds.items():
        check = gate_check(name)
        if check is None:
            raise KeyError(f"unknown gate check {name!r}; valid checks: {sorted(GATE_CHECKS)}")
        observed = metrics.get(check.metric)
        if observed is None:
            results.append(
                CheckResult(
                    name,
                    check.metric,
                    None,
                    threshold,
                    False,
                    f"{check.metric} was not computed in this run (gate.{name} needs it)",
                )
            )
            continue
        passed = check.passes(observed, threshold)
        op = {("max", True): "<=", ("max", False): ">", ("min", True): ">=", ("min", False): "<"}[
            (check.kind, passed)
        ]
        results.append(
            CheckResult(
                name,
                check.metric,
                observed,
                threshold,
                passed,
                f"{check.metric} {_fmt(observed)}"
                + (f" ({details[check.metric]})" if check.metric in details else "")
                + f" {op} gate.{name} {_fmt(threshold)}",
            )
        )
    return GateVerdict(passed=all(r.passed for r in results), checks=results)


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"
