"""The spec's `labels:` section (task dimensions): one entry per label column, each with
its kind (nominal, ordinal or interval), its values or range, its probable-error model and
its flagged-row policy. Here, beside the stage's code, so the spec model can import it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Kind = Literal["nominal", "ordinal", "interval"]
DimensionPolicy = Literal["drop", "drop_from_test", "keep"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DimensionIssuesSpec(_Model):
    """Probable label errors of one dimension, scored out of fold from columns.text.

    nominal and ordinal: the single-label path (the built-in text model's out-of-fold
    probabilities and cleanlab's filter; ordinal values are its classes, their order is
    not used by the model); interval: out-of-fold ridge regression on TF-IDF and cleanlab's
    regression `CleanLearning.find_label_issues` (residuals scaled by the estimated
    uncertainty)."""

    enabled: bool = Field(default=True, description="Look for probable label errors.")
    folds: int = Field(default=5, ge=2, le=20, description="Folds of the out-of-fold model.")
    seed: int = Field(default=13, description="Seed of the folds.")
    min_rows: int = Field(default=50, ge=10, description="Fewest valid rows to fit the model.")
    top: int = Field(default=10, ge=0, le=1000, description="Flagged rows shown in reports.")


class DimensionSpec(_Model):
    """One label dimension: a column of the items and what its values mean."""

    kind: Kind = Field(description="nominal (unordered classes) | ordinal (ordered classes: "
                       "list them in order under values) | interval (numbers).")
    values: list[str | int] | None = Field(
        default=None, min_length=2, description="nominal: the allowed classes (null: any); "
        "ordinal: the classes in order, lowest first (required). Others are quarantined.")
    min: float | None = Field(default=None, description="interval: smallest allowed value.")
    max: float | None = Field(default=None, description="interval: largest allowed value.")
    nullable: bool = Field(
        default=False, description="Rows may leave this dimension empty (not rated); they "
        "are not scored on it. False: an empty value is quarantined.")
    annotation: str | None = Field(
        default=None, description="The annotations' column with this dimension's labels "
        "(default: the dimension's name); agreement runs when it is there.")
    flagged: DimensionPolicy | None = Field(
        default=None, description="What happens to a row flagged on this dimension: drop | "
        "drop_from_test | keep (a flagged_<dimension> column is published). Default: "
        "splits.flagged.")
    stratify: bool = Field(
        default=False, description="Splits keep this dimension's class mix (nominal or "
        "ordinal; at most one dimension).")
    issues: DimensionIssuesSpec = Field(default_factory=DimensionIssuesSpec)

    @model_validator(mode="after")
    def _consistent(self) -> DimensionSpec:
        if self.kind == "ordinal" and self.values is None:
            raise ValueError("kind ordinal: list the values in order, lowest first")
        if self.kind == "interval":
            if self.values is not None or self.stratify:
                raise ValueError("kind interval: no values or stratify (give min and max)")
            if self.min is not None and self.max is not None and self.max < self.min:
                raise ValueError(f"max {self.max} is below min {self.min}")
        elif self.min is not None or self.max is not None:
            raise ValueError(f"kind {self.kind}: min and max are for interval dimensions")
        if self.values is not None:
            seen = [v for i, v in enumerate(self.values) if v in self.values[:i]]
            if seen:
                raise ValueError(f"values: {seen} listed twice")
            if len({type(v) for v in self.values}) > 1:
                raise ValueError("values: all text or all integers")
        return self

    def annotation_column(self, name: str) -> str:
        return self.annotation or name


def check_dimensions(labels: dict[str, DimensionSpec]) -> None:
    """`ValueError` for a `labels:` section the stages cannot run."""
    if not labels:
        raise ValueError("labels: name at least one label column")
    stratified = [n for n, d in labels.items() if d.stratify]
    if len(stratified) > 1:
        raise ValueError(f"labels: stratify on one dimension at most, got {stratified}")
