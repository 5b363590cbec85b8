"""The spec's `multilabel:` section (task multilabel): where the tags are, which tags and
how many a row may have, how label issues are found and how splits are stratified. Here,
beside the stage's code, so the spec model can import it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MultilabelIssuesSpec(_Model):
    """Probable tag errors: an out-of-fold one-vs-rest model scores each row's tags and
    cleanlab's multi-label filter flags the rows whose tags look wrong."""

    enabled: bool = Field(default=True, description="Run the out-of-fold model and cleanlab.")
    folds: int = Field(default=5, ge=2, le=20, description="Folds of the out-of-fold model.")
    seed: int = Field(default=13, description="Seed of the folds.")
    min_rows: int = Field(default=50, ge=10, description="Fewest valid rows to fit it.")
    min_tag_rows: int = Field(
        default=5, ge=2, description="A tag with fewer rows that have it (or lack it) than "
        "this is not modelled (its probability is its share of rows).")
    top: int = Field(default=20, ge=0, le=1000, description="Flagged rows shown in reports.")


class MultilabelSpec(_Model):
    """The spec's `multilabel:` section: what a row's tags must look like."""

    column: str = Field(
        default="tags", description="The tags column: a list (Parquet/JSON Lines), a JSON "
        "array as text, or a delimited string (set delimiter).")
    delimiter: str | None = Field(
        default=None, min_length=1, description="Split a text tags column on this (null: "
        "the column is a list or a JSON array). Whitespace around each tag is removed.")
    tags: list[str] | None = Field(
        default=None, description="The allowed tags; any other is quarantined (check "
        "unknown_tag). Null: every tag seen is allowed.")
    min_tags: int = Field(default=1, ge=0, description="Fewest tags per row (check min_tags).")
    max_tags: int | None = Field(default=None, ge=1, description="Most tags per row "
                                 "(check max_tags); null: no limit.")
    issues: MultilabelIssuesSpec = Field(default_factory=MultilabelIssuesSpec)
    stratify: bool = Field(
        default=True, description="Splits: iterative stratification over the tags (new "
        "split units only; sticky assignments and groups as for single labels; flagged "
        "rows follow splits.flagged: drop, drop_from_test or keep).")

    @model_validator(mode="after")
    def _consistent(self) -> MultilabelSpec:
        if self.max_tags is not None and self.max_tags < self.min_tags:
            raise ValueError(f"max_tags ({self.max_tags}) is below min_tags ({self.min_tags})")
        if self.tags is not None:
            seen = [t for i, t in enumerate(self.tags) if t in self.tags[:i]]
            if seen:
                raise ValueError(f"tags: {seen} listed twice")
            if any(not t.strip() for t in self.tags):
                raise ValueError("tags: an empty tag")
        return self
