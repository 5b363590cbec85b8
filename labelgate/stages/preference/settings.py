"""The spec's `preference:` section (task preference): how the pairs are read, checked,
scored and published. Here, beside the stage's code, so the spec model can import it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Shape = Literal["judgments", "binarized", "rankings"]
PreferenceFormat = Literal["dpo", "dpo_conversational", "reward", "kto", "kto_conversational"]
PREFERENCE_FORMATS: tuple[PreferenceFormat, ...] = (
    "dpo", "dpo_conversational", "reward", "kto", "kto_conversational")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreferenceColumns(_Model):
    """Which source columns hold the preference data; only the shape's own are read. For
    a Label Studio export (``sources.items.format: label-studio``) they name the task's
    data fields (`PreferenceSpec.label_studio_fields`)."""

    prompt: str = Field(default="prompt", description="The prompt: text, or a chat list of "
                        "{role, content} (as a list or as JSON text).")
    response_a: str = Field(default="response_a", description="judgments: the response "
                            "shown first.")
    response_b: str = Field(default="response_b", description="judgments: the response "
                            "shown second.")
    preference: str = Field(default="preference", description="judgments: a | b | tie (see "
                            "preference.values).")
    annotator: str | None = Field(default="annotator", description="judgments, rankings: who "
                                  "judged (optional column; null: none).")
    chosen: str = Field(default="chosen", description="binarized: the preferred response.")
    rejected: str = Field(default="rejected", description="binarized: the other response.")
    responses: str = Field(default="responses", description="rankings: the list of responses.")
    ranking: str = Field(default="ranking", description="rankings: each response's rank, "
                         "1 = best (equal ranks are ties).")
    item_text: str = Field(default="body", description="rankings from a label-studio export: "
                           "the field of each Ranker item that holds the response's text.")


Side = Literal["a", "b", "tie"]


def _default_values() -> dict[Side, list[str]]:
    return {"a": ["a", "A", "1", "left", "response_a"], "b": ["b", "B", "2", "right",
            "response_b"], "tie": ["tie", "Tie", "TIE", "equal", "0"]}


class SwapSpec(_Model):
    """Probable swapped pairs: an out-of-fold model scores each pair, cleanlab flags the
    pairs whose recorded preference is probably reversed."""

    enabled: bool = Field(default=True, description="Run the swapped-pair model.")
    folds: int = Field(default=5, ge=2, le=20, description="Folds, grouped by prompt.")
    seed: int = Field(default=13, description="Seed of the folds.")
    min_pairs: int = Field(default=50, ge=10, description="Fewest decided pairs to fit it.")
    embeddings: str | None = Field(
        default=None,
        description="Add sentence-embedding features (needs labelgate[embeddings]): true "
        "(all-MiniLM-L6-v2), a model name or a local model folder; never downloaded. "
        "Measured on the preference benchmark page: a large gain where the preference is "
        "about relevance, at ~100-250 texts/s on two cores (cached per text in "
        "STORE/cache/<dataset>/embeddings).",
        json_schema_extra=lambda schema: schema["anyOf"].append(  # type: ignore[union-attr]
            {"type": "boolean"}),
    )

    @field_validator("embeddings", mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        if value is True:
            return "all-MiniLM-L6-v2"
        return None if value is False else value


def _default_formats() -> list[PreferenceFormat]:
    return ["dpo", "dpo_conversational", "reward", "kto"]


class PreferencePublishSpec(_Model):
    """What the published version holds for TRL (needs the spec's publish section)."""

    formats: list[PreferenceFormat] = Field(
        default_factory=_default_formats, min_length=1,
        description="dpo: <split>.dpo.jsonl {prompt, chosen, rejected} (DPO, ORPO, CPO); "
        "dpo_conversational: the same with chat lists; reward: <split>.reward.jsonl "
        "{prompt, chosen, rejected, margin}; kto: <split>.kto.jsonl {prompt, completion, "
        "label}, two rows per pair; kto_conversational: with chat lists. Plus "
        "<split>.parquet (one row per pair) from publish.formats.")
    ties: Literal["drop", "keep"] = Field(
        default="drop", description="drop: tied pairs are excluded (policy preference_tie); "
        "keep: they stay in <split>.parquet (preference tie) but no TRL file can hold them.")
    flagged: Literal["drop", "flip", "keep"] = Field(
        default="keep", description="Pairs flagged as probably swapped: keep (published as "
        "recorded, `swapped` true in the parquet; the default: the flags' precision depends "
        "on how much the text says, see the preference benchmark page), drop (policy "
        "preference_flagged) or flip (published reversed).")


class PreferenceSpec(_Model):
    """The spec's `preference:` section: what preference pairs must look like."""

    shape: Shape = Field(
        default="judgments",
        description="judgments: prompt, response_a, response_b, preference, annotator (one "
        "row per judgment); binarized: prompt, chosen, rejected; rankings: prompt, responses, "
        "ranking (expanded to pairs).")
    columns: PreferenceColumns = Field(default_factory=PreferenceColumns)
    values: dict[Side, list[str]] = Field(
        default_factory=_default_values,
        description="Raw preference values read as a, b or tie; any other value is "
        "quarantined (check preference_value).")
    max_tokens: int | None = Field(
        default=None, ge=1, description="Token budget of a response (whitespace tokens, or "
        "the tokenizer's): longer is quarantined (response_over_budget); a pair equal within "
        "the budget is quarantined (identical_after_truncation).")
    tokenizer: str | None = Field(
        default=None, description="A Hugging Face tokenizer.json file (relative to the "
        "spec's folder; the file a model folder ships) that counts the tokens of "
        "max_tokens and of the length-bias report, special tokens left out; needs the "
        "tokenizers library (pip install 'labelgate[tokenizer]'). null: whitespace tokens.")
    near_identical: float | None = Field(
        default=0.9, gt=0, le=1, description="Quarantine a pair whose responses' MinHash "
        "Jaccard (the dedup stage's: character 5-shingles of the normalised text) is at "
        "least this (null: exact and normalised checks only).")
    swaps: SwapSpec = Field(default_factory=SwapSpec)
    min_annotator_judgments: int = Field(
        default=10, ge=1, description="Fewest decided judgments for an annotator's position "
        "bias to count in the gate metric.")
    publish: PreferencePublishSpec = Field(default_factory=PreferencePublishSpec)

    @model_validator(mode="after")
    def _values_distinct(self) -> PreferenceSpec:
        seen: dict[str, str] = {}
        for side, raws in self.values.items():
            for raw in raws:
                if raw in seen and seen[raw] != side:
                    raise ValueError(f"values: {raw!r} is both {seen[raw]} and {side}")
                seen[raw] = side
        return self

    def source_columns(self) -> list[str]:
        """The columns the items must have for the shape."""
        c = self.columns
        return {"judgments": [c.prompt, c.response_a, c.response_b, c.preference],
                "binarized": [c.prompt, c.chosen, c.rejected],
                "rankings": [c.prompt, c.responses, c.ranking]}[self.shape]

    def label_studio_fields(self) -> dict[str, tuple[str, str]]:
        """A Label Studio export's task data fields by role, each with the spec key naming
        it: judgments (a `Pairwise` project) read prompt, a (the left response) and b;
        rankings (a `Ranker` project) read prompt, items (the list of items) and text (each
        item's text field). A column left unset takes Label Studio's template name
        (answer1, answer2, items), not the shape's column name."""
        c, given = self.columns, self.columns.model_fields_set
        key = "preference.columns."

        def role(name: str, template: str) -> tuple[str, str]:
            return (getattr(c, name) if name in given else template), key + name

        if self.shape == "rankings":
            return {"prompt": (c.prompt, key + "prompt"), "items": role("responses", "items"),
                    "text": (c.item_text, key + "item_text")}
        return {"prompt": (c.prompt, key + "prompt"), "a": role("response_a", "answer1"),
                "b": role("response_b", "answer2")}

    def value_map(self) -> dict[str, str]:
        """Raw value -> a | b | tie (a side with no values listed keeps its own name)."""
        out = {side: side for side in ("a", "b", "tie")}
        for side, raws in self.values.items():
            out.update(dict.fromkeys(raws, side))
        return out
