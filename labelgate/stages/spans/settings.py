"""The spec's `spans:` section (task spans): where the spans are, which entity types and
overlaps are allowed, how probable span errors are found, what is published. Here, beside
the stage's code, so the spec model can import it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SpanFormat = Literal["spacy", "hf"]


def _default_formats() -> list[SpanFormat]:
    return ["spacy", "hf"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpanIssuesSpec(_Model):
    """Probable span errors: out-of-fold token probabilities (the built-in per-token
    logistic regression, folds grouped by document) and cleanlab's token classification."""

    enabled: bool = Field(default=True, description="Run the token model and cleanlab.")
    folds: int = Field(default=5, ge=2, le=20, description="Folds, grouped by document.")
    seed: int = Field(default=13, description="Seed of the folds.")
    min_rows: int = Field(default=30, ge=5, description="Fewest valid rows to fit it.")
    top: int = Field(default=20, ge=0, le=1000, description="Flagged tokens in reports.")
    predictions_column: str = Field(
        default="probs", description="With sources.predictions (a file with the id column "
        "and this one): each row's probabilities, one list per token as labelgate "
        "tokenises the text (runs of word characters, and each other non-space "
        "character), in the order O then spans.types; used instead of the built-in model.")


class SpansSpec(_Model):
    """The spec's `spans:` section: what a row's spans must look like (the offsets index
    the one column of columns.text; columns.group names the document, the split group)."""

    column: str = Field(
        default="spans", description="The spans column: a list (or JSON text) of {start, "
        "end, label[, text]} objects, end exclusive (convert CoNLL and Label Studio NER "
        "exports with `python -m labelgate.stages.spans.convert`).")
    types: list[str] | None = Field(
        default=None, description="The allowed entity types (check unknown_type); null: "
        "every type seen.")
    overlap: Literal["forbid", "nested", "allow"] = Field(
        default="forbid", description="Overlapping spans: forbid (check span_overlap), "
        "nested (a span inside another is allowed) or allow.")
    issues: SpanIssuesSpec = Field(default_factory=SpanIssuesSpec)
    formats: list[SpanFormat] = Field(
        default_factory=_default_formats, min_length=1,
        description="Published files: spacy: <split>.spacy.jsonl {id, text, spans: [{start, "
        "end, label}]}; hf: <split>.hf.parquet {id, tokens, ner_tags} (BIO ids, names in "
        "the manifest).")
