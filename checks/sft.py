"""Contract checks for instruction-response (SFT) data, on the canonical frame.

`check_sft` reads the frame `labelgate.stages.instructions.to_canonical` builds (id, messages,
prompt, response, instruction; `_batch`/`_row` when present) and returns quarantine
records in `checks.contract.QUARANTINE_SCHEMA`: one per failed (row, column, check), with
a reason that names the spec key (`sft.<field>`). The rules live in `SftRules`, the
spec's `sft:` section. Every check is a polars expression over the whole frame (chat
structure through `list.eval`), so a million rows take seconds.

Checks (the `check` column), in the order a row's records are listed:

- `empty_prompt`, `empty_response`: null or whitespace-only text. `empty_response` is
  reported when the conversation ends with an assistant turn whose content is empty; a
  conversation that does not end with one gets `chat_ends_with_assistant` instead.
- chat structure (column `messages`): `chat_empty` (no messages), `chat_role` (a role
  outside `sft.allowed_roles`), `chat_system_position` (a system message after the
  first message), `chat_first_turn` (the first non-system turn is not the user's),
  `chat_user_before_assistant` (two assistant turns with no user turn between),
  `chat_alternation` (two user turns in a row, unless
  `sft.allow_consecutive_user_turns`), `chat_ends_with_assistant`, `chat_empty_content`
  (an empty message other than the final assistant turn, reported once per row).
- length bounds: `min_prompt_chars` .. `max_response_tokens` (tokens = runs of
  non-whitespace), each from the `sft` field of the same name.
- `response_echoes_prompt`: the response equals the prompt, the last user turn or the
  instruction after lowercasing and folding whitespace (`sft.reject_echo`).
- `pattern:<name>`: a regex from `sft.patterns` / `sft.extra_patterns` matches (template
  leftovers, AI disclaimers, chat-template tokens, truncation markers).
- `truncated`: the response is at least `sft.truncation_chars` characters or
  `sft.truncation_tokens` tokens long and does not end a sentence (`sft.sentence_end`):
  the generator stopped at its length limit.
- `conflicting_response`: only with `sft.quarantine_conflicts`; otherwise
  `conflicting_responses` reports the same prompts with different answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from checks.contract import QUARANTINE_SCHEMA, ContractResult, enforce_contract
from labelgate.errors import InputError
from labelgate.spec import Spec
from labelgate.stages.ingest.readers import BATCH, ROW
from labelgate.stages.instructions import DEFAULT_PATTERNS, SftPattern, SftRules

_IDX = "__lg_idx"
_VALUE_EXCERPT = 120
_REQUIRED = ("id", "messages", "prompt", "response")
_WS = r"\s+"
_TOKEN = r"\S+"
_SEP = "\n"  # joins role names; a role containing a newline cannot be in allowed_roles
_ASCII_WS = (" ", "\n", "\t", "\r")
CONFLICT_SCHEMA = {
    "conflict": pl.UInt32,
    "id": pl.String,
    "batch": pl.String,
    "row": pl.Int64,
    "prompt": pl.String,
    "response": pl.String,
    "group_rows": pl.UInt32,
    "group_responses": pl.UInt32,
}


def _normalized(expr: pl.Expr) -> pl.Expr:
    """Lowercased, whitespace runs folded to one space, trimmed."""
    return expr.str.to_lowercase().str.replace_all(_WS, " ").str.strip_chars()


def _first_char(expr: pl.Expr) -> pl.Expr:
    """The first character of `_normalized(expr)`, cheaply: strip, take one, lowercase.

    Lowercasing is per character, so equal normalized texts have equal first characters:
    a sound pre-filter that spares normalizing every row.
    """
    return expr.str.strip_chars().str.head(1).str.to_lowercase().str.head(1)


def _squashed(expr: pl.Expr) -> pl.Expr:
    """Lowercased, ASCII whitespace removed (literal replaces: fast)."""
    out = expr.str.to_lowercase()
    for ws in _ASCII_WS:
        out = out.str.replace_all(ws, "", literal=True)
    return out


def _exotic_ws(expr: pl.Expr) -> pl.Expr:
    """Whitespace other than space, tab, newline, carriage return (which `_squashed` keeps)."""
    return expr.str.contains(r"[\s&&[^ \t\n\r]]")


def _blank(expr: pl.Expr) -> pl.Expr:
    return expr.is_null() | (expr.str.strip_chars() == "")


def _excerpt(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String).str.slice(0, _VALUE_EXCERPT)


def _derived(df: pl.DataFrame, rules: SftRules) -> pl.DataFrame:
    """The frame with every helper column the checks read, computed once."""
    m = pl.col("messages")
    role = pl.element().struct.field("role")
    content = pl.element().struct.field("content")
    n = m.list.len().fill_null(0)
    last_role = m.list.last().struct.field("role")
    ends_assistant = (last_role == "assistant").fill_null(False)
    # non-system roles, for the turn order checks
    turns = m.list.eval(role.filter(role.is_null() | (role != "system")))
    blank = m.list.eval(content.is_null() | (content.str.strip_chars() == ""))
    # ignore the final assistant turn: its emptiness is `empty_response`
    blank_ctx = blank.list.head(n - ends_assistant.cast(pl.Int64))
    last_user = m.list.eval(content.filter(role == "user").last()).list.first()
    instruction = pl.col("instruction") if "instruction" in df.columns else pl.lit(None)
    tokens = []
    if rules.needs_tokens():  # a regex pass over all text: only when a rule reads it
        tokens = [
            pl.col("prompt").str.count_matches(_TOKEN).fill_null(0).alias("__prompt_tokens"),
            pl.col("response").str.count_matches(_TOKEN).fill_null(0).alias("__response_tokens"),
        ]
    return df.with_columns(
        n.alias("__n"),
        last_role.alias("__last_role"),
        ends_assistant.alias("__ends_assistant"),
        m.list.eval(role.is_null() | ~role.is_in(rules.allowed_roles)).alias("__bad_role"),
        # a system message after the first: more system messages than "the first one"
        (
            m.list.eval(role == "system").list.sum()
            > (m.list.first().struct.field("role") == "system").fill_null(False).cast(pl.UInt32)
        ).alias("__late_system"),
        turns.list.first().alias("__first_turn"),
        turns.alias("__turns"),
        # "\nuser\nassistant\n...": repeated roles are a substring test, cheap on all rows
        pl.concat_str(pl.lit(_SEP), turns.list.join(_SEP), pl.lit(_SEP)).alias("__turn_str"),
        blank_ctx.alias("__blank_ctx"),
        pl.col("prompt").str.len_chars().fill_null(0).alias("__prompt_chars"),
        pl.col("response").str.len_chars().fill_null(0).alias("__response_chars"),
        *tokens,
        last_user.alias("__last_user"),
        instruction.cast(pl.String).alias("__instruction"),
    )


class _Check:
    """One check: which rows fail, what to show, and why."""

    def __init__(
        self,
        name: str,
        column: str,
        mask: pl.Expr,
        value: pl.Expr,
        reason: pl.Expr,
        *,
        pre: Sequence[pl.Expr] = (),
    ) -> None:
        self.name, self.column, self.mask, self.value, self.reason = (
            name,
            column,
            mask,
            value,
            reason,
        )
        # `pre`: cheap necessary conditions, applied in turn; `mask` only sees the survivors
        self.pre = tuple(pre)


def _first(flags: str | pl.Expr) -> pl.Expr:
    """1-based position of the first true flag in a list-of-bool column."""
    col = pl.col(flags) if isinstance(flags, str) else flags
    return col.list.arg_max() + 1


def _repeat_at(role: str) -> pl.Expr:
    """1-based position (among non-system turns) of the first `role` turn after another."""
    e = pl.element()
    return _first(pl.col("__turns").list.eval((e == role) & (e.shift(1) == role)))


def _repeats(role: str) -> pl.Expr:
    return pl.col("__turn_str").str.contains(f"{_SEP}{role}{_SEP}{role}{_SEP}", literal=True)


def _message(position: pl.Expr) -> pl.Expr:
    return pl.col("messages").list.get(position - 1, null_on_oob=True)


def _structure_checks(rules: SftRules) -> list[_Check]:
    """The eight chat-structure checks on `messages` under `rules` (the `sft:` section),
    `chat_empty` .. `chat_empty_content` in report order, over the `_derived` frame."""
    return [*_message_checks(rules), *_turn_checks(rules)]


def _message_checks(rules: SftRules) -> list[_Check]:
    """`chat_empty`, `chat_role` (`rules.allowed_roles`), `chat_system_position`,
    `chat_first_turn`: four checks over the `_derived` frame."""
    bad_role_at = _first("__bad_role")
    # computed on failing rows only (int_range inside list.eval is slow on all rows)
    is_system = pl.element().struct.field("role") == "system"
    late_system_at = _first(pl.col("messages").list.slice(1).list.eval(is_system)) + 1
    return [
        _Check(
            "chat_empty",
            "messages",
            ~(pl.col("__n") > 0),
            pl.lit(None, dtype=pl.String),
            pl.lit("the conversation has no messages"),
        ),
        _Check(
            "chat_role",
            "messages",
            pl.col("__bad_role").list.any().fill_null(False),
            _message(bad_role_at).struct.field("role"),
            pl.format(
                "message {} has role {}, not one of sft.allowed_roles {}",
                bad_role_at,
                _quoted(_message(bad_role_at).struct.field("role")),
                pl.lit(str(rules.allowed_roles)),
            ),
        ),
        _Check(
            "chat_system_position",
            "messages",
            pl.col("__late_system").fill_null(False),
            _excerpt(_message(late_system_at).struct.field("content")),
            pl.format(
                "system message at position {}; a system message may only be the first message",
                late_system_at,
            ),
        ),
        _Check(
            "chat_first_turn",
            "messages",
            (pl.col("__first_turn") == "assistant").fill_null(False),
            pl.col("__first_turn"),
            pl.lit(
                "the first non-system message is the assistant's; a user turn must come "
                "before each assistant turn"
            ),
        ),
    ]


def _turn_checks(rules: SftRules) -> list[_Check]:
    """`chat_user_before_assistant`, `chat_alternation` (unless
    `rules.allow_consecutive_user_turns`), `chat_ends_with_assistant`, `chat_empty_content`:
    four checks over the `_derived` frame."""
    empty_at = _first("__blank_ctx")
    return [
        _Check(
            "chat_user_before_assistant",
            "messages",
            _repeats("assistant").fill_null(False),
            pl.lit("assistant"),
            pl.format(
                "assistant turn {} (counting non-system turns) follows an assistant turn with "
                "no user turn between",
                _repeat_at("assistant"),
            ),
        ),
        _Check(
            "chat_alternation",
            "messages",
            pl.lit(not rules.allow_consecutive_user_turns) & _repeats("user").fill_null(False),
            pl.lit("user"),
            pl.format(
                "user turn {} (counting non-system turns) follows a user turn; roles must "
                "alternate (sft.allow_consecutive_user_turns is false)",
                _repeat_at("user"),
            ),
        ),
        _Check(
            "chat_ends_with_assistant",
            "messages",
            (pl.col("__n") > 0) & ~pl.col("__ends_assistant"),
            pl.col("__last_role"),
            pl.format(
                "the last message is {}, not the assistant's: no response to train on",
                _quoted(pl.col("__last_role")),
            ),
        ),
        _Check(
            "chat_empty_content",
            "messages",
            pl.col("__blank_ctx").list.any().fill_null(False) & ~_blank(pl.col("prompt")),
            _message(empty_at).struct.field("role"),
            pl.format(
                "message {} ({}) has empty content",
                empty_at,
                _message(empty_at).struct.field("role").fill_null("no role"),
            ),
        ),
    ]


def _quoted(text: pl.Expr) -> pl.Expr:
    """`'text'`, or `null` when the text is null."""
    return pl.concat_str(pl.lit("'"), text, pl.lit("'")).fill_null("null")


def _length_checks(rules: SftRules) -> list[_Check]:
    out: list[_Check] = []
    for side in ("prompt", "response"):
        for unit in ("chars", "tokens"):
            measure = pl.col(f"__{side}_{unit}")
            word = "characters" if unit == "chars" else "tokens"
            present = ~_blank(pl.col(side))  # an empty text is reported once, as empty_*
            for bound in ("min", "max"):
                key = f"{bound}_{side}_{unit}"
                limit = getattr(rules, key)
                if limit is None:
                    continue
                fails = measure < limit if bound == "min" else measure > limit
                sign = "<" if bound == "min" else ">"
                out.append(
                    _Check(
                        key,
                        side,
                        present & fails,
                        _excerpt(pl.col(side)),
                        pl.format(f"{side} has {{}} {word} {sign} sft.{key} {limit}", measure),
                    )
                )
    return out


def _content_checks(rules: SftRules) -> list[_Check]:
    """The text checks, in report order: `empty_prompt`, `empty_response`, the length
    bounds, `response_echoes_prompt`, `pattern:<name>`, `truncated` (as `rules` enable).

    Parameters
    ----------
    rules : SftRules
        The spec's `sft:` section.

    Returns
    -------
    list of _Check
        Over the `_derived` frame; the first two are always the `empty_*` checks.
    """
    out = [*_empty_checks(), *_length_checks(rules)]
    if rules.reject_echo:
        out.append(_echo_check())
    out += _pattern_checks(rules)
    truncated = _truncation_check(rules)
    if truncated is not None:
        out.append(truncated)
    return out


def _empty_checks() -> list[_Check]:
    """`empty_prompt` (when there are messages) and `empty_response` (when the
    conversation ends with an assistant turn)."""
    response = pl.col("response")
    return [
        _Check(
            "empty_prompt",
            "prompt",
            _blank(pl.col("prompt")) & (pl.col("__n") > 0),
            _excerpt(pl.col("prompt")),
            pl.lit(
                "the prompt (instruction and input, or the turns before the response) is "
                "empty or whitespace only"
            ),
        ),
        _Check(
            "empty_response",
            "response",
            _blank(response) & pl.col("__ends_assistant"),
            _excerpt(response),
            pl.lit("the response is empty or whitespace only"),
        ),
    ]


def _echo_check() -> _Check:
    """`response_echoes_prompt`: the normalized response equals the normalized prompt, last
    user turn or instruction. Two cheap pre-filters (first character, then the text without
    ASCII whitespace) leave few rows to normalize."""
    response = pl.col("response")
    others = [pl.col("prompt"), pl.col("__last_user"), pl.col("__instruction")]
    first, squashed = _first_char(response), _squashed(response)
    exotic = [_exotic_ws(e) for e in (response, *others)]
    pre = [
        ~_blank(response)
        & pl.any_horizontal([(first == _first_char(o)).fill_null(False) for o in others]),
        pl.any_horizontal(
            [(squashed == _squashed(o)).fill_null(False) for o in others]
            + [e.fill_null(False) for e in exotic]
        ),
    ]
    norm = _normalized(response)
    echo = pl.any_horizontal([(norm == _normalized(o)).fill_null(False) for o in others])
    return _Check(
        "response_echoes_prompt",
        "response",
        echo,
        _excerpt(response),
        pl.lit(
            "the response repeats the prompt (same text after lowercasing and folding "
            "whitespace; sft.reject_echo)"
        ),
        pre=pre,
    )


def _pattern_checks(rules: SftRules) -> list[_Check]:
    """`pattern:<name>` per pattern and searched field (`sft.patterns`, then
    `sft.extra_patterns`)."""
    out: list[_Check] = []
    for key, p in rules.all_patterns():
        fields: Sequence[str] = ("prompt", "response") if p.field == "both" else (p.field,)
        what = f": {p.description}" if p.description else ""
        for field in fields:
            match = pl.col(field).str.extract(p.regex, 0)
            out.append(
                _Check(
                    f"pattern:{p.name}",
                    field,
                    match.is_not_null(),
                    _excerpt(match),
                    # user text (description) goes in as a literal: pl.format would parse braces
                    pl.concat_str(
                        pl.lit(f"{field} contains '"),
                        _excerpt(match),
                        pl.lit(f"' ({key}.{p.name}{what})"),
                    ),
                )
            )
    return out


def _truncation_check(rules: SftRules) -> _Check | None:
    """`truncated`: a non-empty response at a truncation limit that does not end a
    sentence; None when neither `sft.truncation_chars` nor `sft.truncation_tokens` is set."""
    limits = []
    if rules.truncation_chars is not None:
        limits.append(("chars", rules.truncation_chars))
    if rules.truncation_tokens is not None:
        limits.append(("tokens", rules.truncation_tokens))
    if not limits:
        return None
    response = pl.col("response")
    ends = response.str.contains(rules.sentence_end).fill_null(True)
    at_limit = pl.lit(False)
    for unit, limit in limits:
        at_limit = at_limit | (pl.col(f"__response_{unit}") >= limit)
    bounds = " or ".join(f"sft.truncation_{u} {v}" for u, v in limits)
    measures = [pl.col("__response_chars")]
    tokens = ""
    if rules.truncation_tokens is not None:
        measures.append(pl.col("__response_tokens"))
        tokens = " / {} tokens"
    return _Check(
        "truncated",
        "response",
        ~_blank(response) & at_limit & ~ends,
        _excerpt(response.str.slice(-_VALUE_EXCERPT)),
        pl.format(
            f"the response stops mid-sentence at {{}} characters{tokens}, at the "
            f"length limit ({bounds}); no sentence end (sft.sentence_end)",
            *measures,
        ),
    )


def _keys(df: pl.DataFrame) -> list[pl.Expr]:
    batch = pl.col("_batch").cast(pl.String) if "_batch" in df.columns else pl.lit(None)
    row = pl.col("_row") if "_row" in df.columns else pl.col(_IDX) + 1
    return [
        batch.cast(pl.String).alias("batch"),
        row.cast(pl.Int64).alias("row"),
        pl.col("id").cast(pl.String).alias("id"),
    ]


def _require(df: pl.DataFrame, where: str) -> None:
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise InputError(
            f"{where}: the SFT checks need the canonical columns {list(_REQUIRED)} "
            f"(labelgate.stages.instructions.to_canonical); missing {missing}"
        )


def check_sft(
    df: pl.DataFrame, *, rules: SftRules | None = None, source: str = "items"
) -> pl.DataFrame:
    """Quarantine records (`QUARANTINE_SCHEMA`) for every SFT rule a canonical row breaks.

    `row` is `_row` when the frame has it (else the 1-based position) and `batch` is
    `_batch` (else null). Records are ordered by row, then by check (module docstring).
    """
    rules = rules or SftRules()
    _require(df, f"sources.{source}")
    base = _derived(df.with_row_index(_IDX), rules)
    checks = _content_checks(rules)
    checks[2:2] = _structure_checks(rules)  # empty_* first, then structure, then the rest
    if rules.quarantine_conflicts:
        groups = _conflict_groups(base)
        base = base.join(groups.select(_IDX, "group_responses"), on=_IDX, how="left")
        checks.append(_conflict_check())
    keys = _keys(base)
    lazy = base.lazy()
    narrow = [_IDX, "id", "prompt", "response", "__last_user", "__instruction"]
    narrow += [c for c in ("_batch", "_row") if c in base.columns]
    parts = []
    for order, c in enumerate(checks):
        # a pre-filter is applied eagerly, or the optimizer would fuse it with the mask
        rows = base.select(narrow)  # pre-filters copy rows: only the columns they read
        for pre in c.pre:
            rows = rows.filter(pre)
        parts.append(
            (lazy if not c.pre else rows.lazy())
            .filter(c.mask)
            .select(
                pl.col(_IDX),
                pl.lit(order, dtype=pl.UInt32).alias("__order"),
                pl.lit(source).alias("source"),
                *keys,
                pl.lit(c.column).alias("column"),
                pl.lit(c.name).alias("check"),
                c.value.cast(pl.String).alias("failure_value"),
                c.reason.cast(pl.String).alias("reason"),
            )
        )
    out = pl.concat(parts).sort(_IDX, "__order").collect()
    return out.select(list(QUARANTINE_SCHEMA)).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]


def _conflict_groups(df: pl.DataFrame) -> pl.DataFrame:
    """Rows (by `_IDX`) whose normalized prompt has more than one normalized response.

    Normalizing every row is a regex pass; instead rows are first grouped by a cheap key
    (lowercased, ASCII whitespace removed; all whitespace for the few rows with other
    whitespace). Equal normalized prompts have equal keys, so only rows sharing a key
    with another row are normalized exactly.
    """
    prompt, response = pl.col("prompt"), pl.col("response")
    usable = df.filter(~_blank(prompt) & ~_blank(response)).select(_IDX, "prompt", "response")
    exotic = _exotic_ws(prompt)
    keyed = pl.concat(
        [
            usable.filter(~exotic).with_columns(_squashed(prompt).alias("__k")),
            usable.filter(exotic).with_columns(
                prompt.str.to_lowercase().str.replace_all(r"\s", "").alias("__k")
            ),
        ]
    )
    shared = keyed.filter(pl.len().over("__k") > 1)
    return (
        shared.with_columns(_normalized(prompt).alias("__p"), _normalized(response).alias("__r"))
        .with_columns(
            pl.len().over("__p").cast(pl.UInt32).alias("group_rows"),
            pl.col("__r").n_unique().over("__p").cast(pl.UInt32).alias("group_responses"),
            pl.col(_IDX).min().over("__p").alias("__first"),
        )
        .filter(pl.col("group_responses") > 1)
        .select(_IDX, "__first", "group_rows", "group_responses")
    )


def _conflict_check() -> _Check:
    responses = pl.col("group_responses")
    return _Check(
        "conflicting_response",
        "response",
        responses.is_not_null(),
        _excerpt(pl.col("response")),
        pl.format(
            "the same prompt has {} different responses in this dataset (sft.quarantine_conflicts)",
            responses,
        ),
    )


def conflicting_responses(df: pl.DataFrame) -> pl.DataFrame:
    """Rows whose prompt (normalized) also appears with a different response (normalized).

    A report (`CONFLICT_SCHEMA`): one row per involved row; `conflict` numbers the groups
    in order of first appearance; `group_rows` / `group_responses` count the group's rows
    and distinct responses. Rows with an empty prompt or response are left out (the
    contract quarantines them).
    """
    for c in ("id", "prompt", "response"):
        if c not in df.columns:
            raise InputError(f"conflicting_responses: missing column {c!r} (canonical frame)")
    indexed = df.with_row_index(_IDX)
    groups = _conflict_groups(indexed)
    keyed = indexed.join(groups, on=_IDX, how="inner").with_columns(
        pl.col("__first").rank("dense").cast(pl.UInt32).alias("conflict")
    )
    return (
        keyed.sort("conflict", _IDX)
        .select("conflict", *_keys(keyed), "prompt", "response", "group_rows", "group_responses")
        .select(list(CONFLICT_SCHEMA))
        .cast(CONFLICT_SCHEMA)  # type: ignore[arg-type]
    )


def check_names(rules: SftRules | None = None) -> list[str]:
    """The check names `check_sft` can report under `rules`, in report order."""
    rules = rules or SftRules()
    checks = _content_checks(rules)
    checks[2:2] = _structure_checks(rules)
    names = [c.name for c in checks]
    if rules.quarantine_conflicts:
        names.append("conflicting_response")
    return list(dict.fromkeys(names))


__all__ = [
    "CONFLICT_SCHEMA",
    "DEFAULT_PATTERNS",
    "SftPattern",
    "SftRules",
    "check_names",
    "check_sft",
    "conflicting_responses",
    "enforce_instruction_contract",
    "sft_summary",
]


def enforce_instruction_contract(
    canonical: pl.DataFrame,
    *,
    spec: Spec,
    rejects: pl.DataFrame | None = None,
    source: str = "items",
) -> tuple[ContractResult, pl.DataFrame]:
    """The pandera contract and the SFT checks on the canonical frame, as one result.

    A row failing either is quarantined once, with every reason (contract records first,
    then SFT records in `check_sft` order). Returns the merged `ContractResult` (input =
    valid + quarantined, unparseable records included) and `conflicting_responses` over
    the canonical rows (reported; quarantined only with `sft.quarantine_conflicts`).
    """
    contract = enforce_contract(canonical, spec=spec, source=source, rejects=rejects)
    rules = spec.sft_rules()
    sft = check_sft(canonical, rules=rules, source=source)
    keys = sft.select(pl.col("batch").alias(BATCH), pl.col("row").alias(ROW)).unique()
    valid = contract.valid.join(keys, on=[BATCH, ROW], how="anti")
    quarantine = pl.concat([contract.quarantine, sft])
    result = ContractResult(
        valid=valid,
        quarantine=quarantine,
        rows_input=contract.rows_input,
        rows_quarantined=contract.rows_input - valid.height,
    )
    return result, conflicting_responses(canonical)


def sft_summary(
    result: ContractResult, conflicts: pl.DataFrame, *, rules: SftRules, top: int = 20
) -> tuple[dict[str, float], dict[str, Any]]:
    """(metrics, report section) of the SFT checks: quarantined rows per SFT check and the
    conflicting-response groups (with the first `top` rows)."""
    names = set(check_names(rules)) | {"conflicting_response"}
    sft = result.quarantine.filter(
        pl.col("check").is_in(list(names)) | pl.col("check").str.starts_with("pattern:")
    )
    by_check = (
        sft.group_by("check")
        .agg(pl.len().alias("rows"), pl.col("reason").first().alias("example"))
        .sort(["rows", "check"], descending=[True, False])
    )
    sft_rows = sft.select("batch", "row").unique().height
    groups = int(conflicts.get_column("conflict").n_unique()) if conflicts.height else 0
    metrics = {
        "sft.quarantined_rows": float(sft_rows),
        "sft.quarantine_rate": sft_rows / result.rows_input if result.rows_input else 0.0,
        "sft.conflict_groups": float(groups),
        "sft.conflicting_rows": float(conflicts.height),
    }
    section: dict[str, Any] = {
        "rules": rules.model_dump(mode="json", exclude={"patterns", "extra_patterns"}),
        "patterns": [p.name for _, p in rules.all_patterns()],
        "quarantined_rows": sft_rows,
        "by_check": by_check.to_dicts(),
        "conflicts": {
            "groups": groups,
            "rows": conflicts.height,
            "quarantined": rules.quarantine_conflicts,
            "examples": conflicts.head(top)
            .with_columns(pl.col("prompt", "response").str.slice(0, _VALUE_EXCERPT))
            .to_dicts(),
        },
    }
    return metrics, section
