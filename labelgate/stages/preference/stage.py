"""Spec -> preference stage glue (pure; `tasks/preference.py` wraps it for the flow).

- `read_batch`: one lake batch's rows as judgments (ids: the id column when the data has
  one, else ``<file stem>:<row>``); the spec's id column is always present;
- `check_batches`: the judgments of every batch through `check_judgments`;
- `exclude_by_policies`: the ties and flagged-pair policies (``preference.publish``),
  applied in the splits stage before the gate, so what they exclude is in the run's
  `rows.excluded` and the warehouse's `exclusions`;
- `publish_files`: each split's kept judgments as one row per pair (flagged pairs flipped
  under ``flagged: flip``) and the TRL files of ``preference.publish.formats``;
- `preference_tokenizer`: the tokenizer `preference.tokenizer` names, loaded;
- `check_swap_embeddings`: the library and model `preference.swaps.embeddings` asks for
  are installed, checked before a run reads any data (errors name that key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.errors import LabelgateError
from labelgate.spec import Spec
from labelgate.stages.preference.checks import PairCheckResult, check_judgments
from labelgate.stages.preference.read import from_label_studio, to_judgments
from labelgate.stages.preference.settings import PreferenceColumns
from labelgate.stages.preference.tokens import Tokenizer, load_tokenizer
from labelgate.stages.preference.trl import (
    TRL_SUFFIX,
    exclude_by_policy,
    published_pairs,
    trl_records,
)

SWAP_EMBEDDINGS_KEY = "preference.swaps.embeddings"
PAIR_FILE_COLUMNS = ("pair_id", "prompt", "prompt_messages", "chosen", "rejected",
                     "preference", "margin", "judgments", "swapped", "flipped")


def read_batch(rows: pl.DataFrame, *, spec: Spec, where: str
               ) -> tuple[pl.DataFrame, dict[str, int]]:
    """One batch's rows (n, k) as judgments (`JUDGMENT_SCHEMA`, the source's other columns,
    the spec's id column, `_batch`/`_row`); a Label Studio export's batch (one task per
    row) through `from_label_studio` first. Also what the export skipped (cancelled
    annotations, tasks without a judgment; empty for a table)."""
    pref = spec.preference_settings()
    id_col = spec.columns.id
    columns, value_map = pref.columns, pref.value_map()
    skipped: dict[str, int] = {}
    if spec.sources.items.format == "label-studio":
        rows, skipped = from_label_studio(rows, shape=pref.shape, where=where,
                                          fields=pref.label_studio_fields())
        columns, value_map, id_col = PreferenceColumns(), {}, "id"
    out = to_judgments(rows, shape=pref.shape, columns=columns, value_map=value_map or None,
                       id_column=id_col, id_prefix=f"{Path(where).stem}:", where=where)
    if spec.columns.id not in out.columns:
        out = out.with_columns(pl.col("id").alias(spec.columns.id))
    return out, skipped


def check_batches(frames: Sequence[pl.DataFrame], *, spec: Spec,
                  rejects: pl.DataFrame | None = None) -> PairCheckResult:
    """The run's judgments (every batch's `read_batch`) through the preference checks;
    `rejects`, the quarantine records (`QUARANTINE_COLUMNS`, check ``parse``) of the
    records the readers could not parse, join the quarantine and count as input."""
    pref = spec.preference_settings()
    judgments = pl.concat(list(frames), how="diagonal_relaxed") if frames else pl.DataFrame()
    checked = check_judgments(judgments, max_tokens=pref.max_tokens,
                              near_threshold=pref.near_identical, source="items",
                              tokenizer=preference_tokenizer(spec))
    if rejects is None or rejects.height == 0:
        return checked
    return replace(checked, rows_input=checked.rows_input + rejects.height,
                   counts={**checked.counts, "parse": rejects.height},
                   quarantine=pl.concat([checked.quarantine, rejects], how="vertical_relaxed"))


PUBLISH_POLICIES = ("preference_tie", "preference_flagged")


def exclude_by_policies(kept: pl.DataFrame, *, spec: Spec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, excluded): the judgments of tied and flagged pairs excluded by
    ``preference.publish.ties`` / ``flagged`` (`exclude_by_policy`); the splits stage
    applies them when the spec publishes."""
    pol = spec.preference_settings().publish
    return exclude_by_policy(kept, ties=pol.ties, flagged=pol.flagged)


def publish_files(
    kept: pl.DataFrame, *, spec: Spec,
) -> tuple[dict[str, pl.DataFrame], list[tuple[str, pl.DataFrame]], dict[str, Any]]:
    """What a preference version publishes.

    Parameters
    ----------
    kept : pl.DataFrame
        The splits stage's kept judgments (with `split` and the pair columns; the policies'
        exclusions already out: `exclude_by_policies`).

    Returns
    -------
    (pairs, trl_files, summary)
        pairs: split -> one row per pair (`PAIR_FILE_COLUMNS`), the `<split>.parquet`
        files; trl_files: (`<split>.<format>.jsonl`, rows); summary: pairs and TRL rows per
        split and format, the policies.
    """
    pol = spec.preference_settings().publish
    splits: dict[str, pl.DataFrame] = {}
    files: list[tuple[str, pl.DataFrame]] = []
    counts: dict[str, dict[str, int]] = {}
    for name in ("train", "validation", "test"):
        part = kept.filter(pl.col("split") == name)
        pairs, _ = published_pairs(part, ties=pol.ties, flagged=pol.flagged)
        splits[name] = pairs.select(PAIR_FILE_COLUMNS)
        counts[name] = {"pairs": pairs.height}
        for fmt in pol.formats:
            records = trl_records(pairs, fmt)
            files.append((f"{name}.{TRL_SUFFIX[fmt]}.jsonl", records))
            counts[name][fmt] = records.height
    summary = {"formats": list(pol.formats), "ties": pol.ties, "flagged": pol.flagged,
               "files": counts}
    return splits, files, summary


def policy_counts(excluded: pl.DataFrame) -> Mapping[str, int]:
    """Judgments the publish policies excluded (`PUBLISH_POLICIES`), by policy, from the
    splits stage's exclusions (id, split, exclusion_policy, exclusion_reason)."""
    mine = excluded.filter(pl.col("exclusion_policy").is_in(PUBLISH_POLICIES))
    if mine.height == 0:
        return {}
    return dict(mine.group_by("exclusion_policy").len().sort("exclusion_policy").rows())


def preference_tokenizer(spec: Spec) -> Tokenizer | None:
    """The tokenizer `preference.tokenizer` names, resolved against the spec's folder and
    loaded (None: whitespace tokens); a `SpecError` naming the key when it cannot load."""
    path = spec.preference_settings().tokenizer if spec.is_preference else None
    return None if path is None else load_tokenizer(spec.resolve(path))


def check_swap_embeddings(spec: Spec, *, notice: Callable[[str], None] | None = None) -> None:
    """Raise when `preference.swaps.embeddings` is set (and the swap model on) but the
    sentence-transformers library or the model is not installed here: the label-issue
    stage's check (`embeddings.check_model`), its message naming this spec key and the
    command that installs the extra (``make embeddings``)."""
    if not spec.is_preference:
        return
    swaps = spec.preference_settings().swaps
    if not swaps.enabled or swaps.embeddings is None:
        return
    from labelgate.stages.label_issues import embeddings

    try:
        embeddings.check_model(swaps.embeddings, base_dir=spec.base_dir, notice=notice)
    except LabelgateError as exc:  # the shared check names the label-issue key
        message = str(exc).replace("label_issues.embeddings.model", SWAP_EMBEDDINGS_KEY)
        raise type(exc)(message.replace("label_issues.embeddings", SWAP_EMBEDDINGS_KEY)
                        ) from None
