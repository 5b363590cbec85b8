"""Instruction-response data: one canonical frame for Alpaca, chat and prompt/response sources.

Fine-tune data arrives in three shapes, and every SFT check, the dedup and the label
stages read one canonical frame built from any of them (`to_canonical`):

- **alpaca**: `instruction`, `input` (may be empty), `output` (Stanford Alpaca; Axolotl
  `type: alpaca`);
- **chat**: `messages`, a list of `{role, content}` (OpenAI / TRL conversational; Axolotl
  `chat_template`). ShareGPT-style lists (`conversations` of `{from, value}` with roles
  human/gpt) are read by naming the fields and a role map in `InstructionColumns`;
- **prompt_response**: one prompt column and one response column.

The canonical frame (`CANONICAL_SCHEMA`, then any `keep` columns and `_batch`/`_row`):

- `id` (String);
- `messages` (List(Struct{role, content})): the whole conversation; an Alpaca row is
  `[system?], user, assistant`, its user content `instruction` + blank line + `input`;
- `prompt` (String): the contents of the non-system messages before the final assistant
  turn, joined by a blank line: what the model answers. System messages are left out on
  purpose: a system prompt shared by the whole dataset would make every prompt a
  near-duplicate of every other;
- `response` (String): the final assistant turn's content; null when the conversation
  does not end with an assistant turn (the chat-structure check reports it);
- `instruction`, `input` (String): the Alpaca fields as given (null for other styles), so
  Alpaca → canonical → Alpaca returns the rows unchanged.

`from_canonical` writes rows in the two formats trainers read (Axolotl, Unsloth, TRL):
Alpaca `{instruction, input, output}` and chat `{"messages": [{role, content}, ...]}`;
`AlpacaRecord` and `ChatRecord` are those formats' schemas. Everything is polars
expressions over list/struct columns: no per-row Python.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from labelgate.errors import InputError

Style = Literal["alpaca", "chat", "prompt_response"]
PublishStyle = Literal["alpaca", "chat"]
ROLES = ("system", "user", "assistant")
MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})
CANONICAL_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "messages": pl.List(MESSAGE),
    "prompt": pl.String,
    "response": pl.String,
    "instruction": pl.String,
    "input": pl.String,
}
# the readers' lineage columns (labelgate.stages.ingest.readers), kept when present
_PASSTHROUGH = ("_batch", "_row")
_TURN_SEP = "\n\n"
_NULL = pl.lit(None, dtype=pl.String)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstructionColumns(_Model):
    """Which source columns hold the instruction data (spec: `columns`, task instruction).

    Only the fields of the source's style are read; the defaults are the formats' own
    field names.
    """

    instruction: str = Field(default="instruction", description="alpaca: instruction column.")
    input: str | None = Field(
        default="input", description="alpaca: optional context column; null if there is none."
    )
    output: str = Field(default="output", description="alpaca: response column.")
    messages: str = Field(default="messages", description="chat: list-of-turns column.")
    role_field: str = Field(default="role", description="chat: a turn's role field.")
    content_field: str = Field(default="content", description="chat: a turn's text field.")
    role_map: dict[str, str] = Field(
        default_factory=dict,
        description="chat: source role -> system | user | assistant, e.g. {human: user, "
        "gpt: assistant} for ShareGPT. Unmapped roles pass through unchanged.",
    )
    prompt: str = Field(default="prompt", description="prompt_response: prompt column.")
    response: str = Field(default="response", description="prompt_response: response column.")
    system: str | None = Field(
        default=None,
        description="alpaca / prompt_response: optional system prompt column (empty = none).",
    )


class AlpacaRecord(_Model):
    """One Alpaca JSONL row, as Axolotl (`type: alpaca`) and Unsloth read it."""

    instruction: str
    input: str
    output: str


class ChatMessage(_Model):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRecord(_Model):
    """One chat JSONL row: TRL's conversational format, Axolotl `chat_template`."""

    messages: list[ChatMessage] = Field(min_length=1)


def _require(df: pl.DataFrame, names: Sequence[tuple[str, str]], *, where: str, style: str) -> None:
    missing = [f"{col!r} (columns.{key})" for key, col in names if col not in df.columns]
    if missing:
        shown = [c for c in df.columns if not c.startswith("_")]
        raise InputError(
            f"{where}: style {style!r} needs column(s) {', '.join(missing)}; the data has {shown}"
        )


def _text(df: pl.DataFrame, name: str, *, where: str, key: str) -> pl.Expr:
    dtype = df.schema[name]
    if dtype == pl.String or dtype == pl.Null:
        return pl.col(name).cast(pl.String)
    if dtype.is_numeric() or dtype == pl.Boolean:
        return pl.col(name).cast(pl.String)
    raise InputError(f"{where}: column {name!r} (columns.{key}) holds {dtype}; expected text")


def _user_content(instruction: pl.Expr, inp: pl.Expr) -> pl.Expr:
    has_input = inp.is_not_null() & (inp.str.strip_chars() != "")
    return (
        pl.when(has_input)
        .then(pl.concat_str([instruction, pl.lit(_TURN_SEP), inp]))
        .otherwise(instruction)
    )


def _turn(role: str, content: pl.Expr) -> pl.Expr:
    return pl.struct(pl.lit(role).alias("role"), content.alias("content"))


def _with_system(system: pl.Expr | None, turns: list[pl.Expr]) -> pl.Expr:
    # concat_arr then to_list: faster than concat_list of structs (docs/benchmarks/contract.md)
    if system is None:
        return pl.concat_arr(turns).arr.to_list()
    has_system = system.is_not_null() & (system.str.strip_chars() != "")
    full = pl.concat_arr([_turn("system", system), *turns]).arr.to_list()
    return full.list.slice(pl.when(has_system).then(0).otherwise(1))


def _decode_messages(df: pl.DataFrame, cols: InstructionColumns, *, where: str) -> pl.DataFrame:
    """A messages column stored as JSON text (CSV, Parquet string) becomes a list column."""
    name = cols.messages
    turn = pl.Struct({cols.role_field: pl.String, cols.content_field: pl.String})
    try:
        return df.with_columns(pl.col(name).str.json_decode(pl.List(turn)))
    except pl.exceptions.PolarsError:
        rows = df.get_column("_row") if "_row" in df.columns else None
        for i, value in enumerate(df.get_column(name)):
            try:
                json.loads(value) if value is not None else None
            except json.JSONDecodeError as exc:
                row = rows[i] if rows is not None else i + 1
                raise InputError(
                    f"{where}: row {row}, column {name!r} (columns.messages): not a JSON list "
                    f"of turns: {exc.msg}: {value[:80]!r}"
                ) from None
        raise InputError(
            f"{where}: column {name!r} (columns.messages): the JSON values do not share one "
            f"shape (a list of {{role, content}} objects expected)"
        ) from None


def _chat_messages(df: pl.DataFrame, cols: InstructionColumns, *, where: str) -> pl.Expr:
    name = cols.messages
    dtype = df.schema[name]
    if dtype == pl.Null:  # every value missing: an empty list column, the checks report it
        return pl.lit(None, dtype=pl.List(MESSAGE))
    inner = dtype.inner if isinstance(dtype, pl.List) else None
    if not isinstance(inner, pl.Struct):
        raise InputError(
            f"{where}: column {name!r} (columns.messages) holds {dtype}; expected a list of "
            f"{{{cols.role_field}, {cols.content_field}}} objects"
        )
    fields = {f.name: f.dtype for f in inner.fields}
    absent = [f for f in (cols.role_field, cols.content_field) if f not in fields]
    if absent:
        raise InputError(
            f"{where}: column {name!r} (columns.messages): turns lack field(s) {absent} "
            f"(columns.role_field / columns.content_field); they have {sorted(fields)}"
        )
    for field, key in ((cols.role_field, "role_field"), (cols.content_field, "content_field")):
        kind = fields[field]
        if not (kind == pl.String or kind == pl.Null):
            raise InputError(
                f"{where}: column {name!r} (columns.messages): field {field!r} "
                f"(columns.{key}) holds {kind}; expected text"
            )
    role = pl.element().struct.field(cols.role_field).cast(pl.String)
    if cols.role_map:
        role = role.replace(cols.role_map)
    content = pl.element().struct.field(cols.content_field).cast(pl.String)
    return pl.col(name).list.eval(pl.struct(role.alias("role"), content.alias("content")))


def to_canonical(
    df: pl.DataFrame,
    *,
    style: Style,
    columns: InstructionColumns | None = None,
    id_column: str = "id",
    keep: Sequence[str] = (),
    where: str = "sources.items",
) -> pl.DataFrame:
    """Map rows of one source style to the canonical frame (see the module docstring).

    `keep` columns (labels, group) are passed through after the canonical ones, and so
    are `_batch` and `_row` when present. `InputError` names `where` and the column.
    """
    cols = columns or InstructionColumns()
    _require(df, [("id", id_column), *[("keep", k) for k in keep]], where=where, style=style)
    system = None
    if cols.system is not None and style != "chat":
        _require(df, [("system", cols.system)], where=where, style=style)
        system = _text(df, cols.system, where=where, key="system")
    ids = pl.col(id_column).cast(pl.String).alias("id")
    if style == "alpaca":
        frame = _alpaca_frame(df, cols, ids=ids, system=system, where=where)
    elif style == "prompt_response":
        frame = _prompt_response_frame(df, cols, ids=ids, system=system, where=where)
    elif style == "chat":
        _require(df, [("messages", cols.messages)], where=where, style=style)
        if df.schema[cols.messages] == pl.String:
            df = _decode_messages(df, cols, where=where)
        frame = _chat_frame(df, cols, ids=ids, where=where)
    else:  # pragma: no cover - Literal guards it; a spec typo fails in the spec model
        raise InputError(
            f"{where}: unknown style {style!r}; expected alpaca, chat, prompt_response"
        )

    extra = [c for c in (*keep, *_PASSTHROUGH) if c in df.columns and c not in frame.columns]
    out = pl.concat([frame, df.select(extra)], how="horizontal") if extra else frame
    return out.cast({"messages": pl.List(MESSAGE)})


def _alpaca_frame(
    df: pl.DataFrame, cols: InstructionColumns, *, ids: pl.Expr, system: pl.Expr | None,
    where: str,
) -> pl.DataFrame:
    """The canonical columns of Alpaca rows.

    Parameters
    ----------
    df : pl.DataFrame
        The source rows, shape (n_rows, k).
    cols : InstructionColumns
        Which columns hold instruction, input and output.
    ids : pl.Expr
        The id column as text, named `id`.
    system : pl.Expr or None
        The system prompt text, if the source has one.
    where : str
        The source, for error messages.

    Returns
    -------
    pl.DataFrame
        Shape (n_rows, 6): the `CANONICAL_SCHEMA` columns.
    """
    need = [("instruction", cols.instruction), ("output", cols.output)]
    if cols.input is not None:
        need.append(("input", cols.input))
    _require(df, need, where=where, style="alpaca")
    instruction = _text(df, cols.instruction, where=where, key="instruction")
    output = _text(df, cols.output, where=where, key="output")
    inp = (
        _text(df, cols.input, where=where, key="input") if cols.input is not None else _NULL
    )
    return _one_exchange(
        df, ids=ids, system=system, prompt=_user_content(instruction, inp), response=output,
        instruction=instruction, inp=inp,
    )


def _prompt_response_frame(
    df: pl.DataFrame, cols: InstructionColumns, *, ids: pl.Expr, system: pl.Expr | None,
    where: str,
) -> pl.DataFrame:
    """The canonical columns of prompt/response rows (parameters as `_alpaca_frame`).

    Returns
    -------
    pl.DataFrame
        Shape (n_rows, 6): the `CANONICAL_SCHEMA` columns; instruction and input null.
    """
    _require(
        df, [("prompt", cols.prompt), ("response", cols.response)], where=where,
        style="prompt_response",
    )
    prompt = _text(df, cols.prompt, where=where, key="prompt")
    response = _text(df, cols.response, where=where, key="response")
    return _one_exchange(df, ids=ids, system=system, prompt=prompt, response=response)


def _one_exchange(
    df: pl.DataFrame, *, ids: pl.Expr, system: pl.Expr | None, prompt: pl.Expr,
    response: pl.Expr, instruction: pl.Expr = _NULL, inp: pl.Expr = _NULL,
) -> pl.DataFrame:
    """The canonical frame of one user turn (`prompt`) and one assistant turn (`response`),
    after the system prompt when there is one; shape (n_rows, 6), `CANONICAL_SCHEMA`'s
    columns."""
    return df.select(
        ids,
        _with_system(system, [_turn("user", prompt), _turn("assistant", response)]).alias(
            "messages"
        ),
        prompt.alias("prompt"),
        response.alias("response"),
        instruction.alias("instruction"),
        inp.alias("input"),
    )


def _chat_frame(
    df: pl.DataFrame, cols: InstructionColumns, *, ids: pl.Expr, where: str
) -> pl.DataFrame:
    """The canonical columns of chat rows whose messages column is a list (decoded);
    parameters as `_alpaca_frame` (`cols`: the messages column, its role and content
    fields and the role map).

    Returns
    -------
    pl.DataFrame
        Shape (n_rows, 6): the `CANONICAL_SCHEMA` columns; instruction and input null.
    """
    messages = _chat_messages(df, cols, where=where).alias("messages")
    return (
        df.select(ids, messages)
        .with_columns(_prompt_and_response())
        .with_columns(_NULL.alias("instruction"), _NULL.alias("input"))
    )


def _prompt_and_response() -> list[pl.Expr]:
    """`prompt` and `response` from `messages` (see the module docstring)."""
    m = pl.col("messages")
    ends_with_assistant = m.list.last().struct.field("role") == "assistant"
    context = pl.when(ends_with_assistant).then(m.list.head(m.list.len() - 1)).otherwise(m)
    prompt = context.list.eval(
        pl.element().filter(pl.element().struct.field("role") != "system").struct.field("content")
    ).list.join(_TURN_SEP)
    response = pl.when(ends_with_assistant).then(m.list.last().struct.field("content"))
    return [prompt.alias("prompt"), response.cast(pl.String).alias("response")]


def _render(turns: pl.Expr) -> pl.Expr:
    """Turns as `role: content` lines (an Alpaca `input` carrying earlier context)."""
    line = pl.concat_str(
        [pl.element().struct.field("role"), pl.lit(": "), pl.element().struct.field("content")]
    )
    return turns.list.eval(line)


def _no_response(df: pl.DataFrame) -> None:
    missing = df.filter(pl.col("response").is_null())
    if missing.height:
        ids = missing.get_column("id").head(5).to_list()
        raise InputError(
            f"{missing.height} row(s) have no final assistant turn (e.g. id {ids}); publish "
            f"only rows that passed the SFT checks"
        )


def from_canonical(
    df: pl.DataFrame,
    *,
    style: PublishStyle,
    keep: Sequence[str] = (),
    multi_turn: Literal["input", "error"] = "input",
) -> pl.DataFrame:
    """Rows of the canonical frame in a trainer's format, plus the `keep` columns.

    chat: `messages` as is. alpaca: rows that came from Alpaca get their fields back
    unchanged; other rows take the last user turn as `instruction`, the final assistant
    turn as `output`, and any earlier turns (system included) rendered as `role: content`
    lines as `input` (`multi_turn="error"` raises instead, naming the rows).
    """
    _no_response(df)
    if style == "chat":
        return df.select("messages", *keep)
    derived_instruction, derived_input = _alpaca_from_turns()
    from_alpaca = pl.col("instruction").is_not_null()
    out = df.with_columns(
        pl.when(from_alpaca)
        .then(pl.col("instruction"))
        .otherwise(derived_instruction)
        .fill_null("")
        .alias("__instruction"),
        pl.when(from_alpaca)
        .then(pl.col("input"))
        .otherwise(derived_input)
        .fill_null("")
        .alias("__input"),
    )
    if multi_turn == "error":
        multi = out.filter(~from_alpaca & (pl.col("__input") != ""))
        if multi.height:
            ids = multi.get_column("id").head(5).to_list()
            raise InputError(
                f"{multi.height} row(s) have more than one user turn or a system turn "
                f"(e.g. id {ids}); Alpaca holds one instruction: publish them as chat, or "
                f"allow multi_turn='input'"
            )
    return out.select(
        pl.col("__instruction").alias("instruction"),
        pl.col("__input").alias("input"),
        pl.col("response").alias("output"),
        *keep,
    )


def _alpaca_from_turns() -> tuple[pl.Expr, pl.Expr]:
    """Alpaca `instruction` and `input` of a conversation that did not come from Alpaca.

    Returns
    -------
    tuple of (pl.Expr, pl.Expr)
        String expressions over `messages` (whose final turn is the assistant's): the last
        user turn's content (null when there is none), and the other turns before the
        response rendered as `role: content` lines, joined by newlines (empty when none).
    """
    m = pl.col("messages")
    context = m.list.head(m.list.len() - 1)  # the final turn is the assistant's (checked)
    roles = context.list.eval(pl.element().struct.field("role"))
    # index of the last user turn in the context (-1: none); no int_range in list.eval (slow)
    is_user_reversed = roles.list.reverse().list.eval(pl.element() == "user")
    last_user = (
        pl.when(is_user_reversed.list.any())
        .then(roles.list.len().cast(pl.Int64) - 1 - is_user_reversed.list.arg_max())
        .otherwise(-1)
    )
    instruction = context.list.get(last_user, null_on_oob=True).struct.field("content")
    lines = _render(context)
    before = lines.list.head(last_user.clip(lower_bound=0)).list.join("\n")
    after = lines.list.slice(last_user + 1).list.join("\n")
    inp = (
        pl.when(before == "")
        .then(after)
        .when(after == "")
        .then(before)
        .otherwise(pl.concat_str([before, pl.lit("\n"), after]))
    )
    return instruction, inp


def write_jsonl(rows: pl.DataFrame, path: Path) -> Path:
    """Write rows from `from_canonical` as JSON Lines (one object per line, UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.write_ndjson(path)
    return path


# The spec's `sft:` section (checks.sft runs it); here so the spec model can import it.


def _valid_regex(value: str) -> str:
    try:  # polars' (Rust) regex engine is the one that will run it
        pl.Series([""], dtype=pl.String).str.contains(value)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()
        raise ValueError(f"invalid regex {value!r}: {first[-1] if first else exc}") from None
    return value


class SftPattern(_Model):
    """A text pattern whose match quarantines the row (check `pattern:<name>`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Check name suffix.")
    regex: str = Field(description="Rust regex (polars); (?i) for case-insensitive.")
    field: Literal["prompt", "response", "both"] = Field(
        default="response", description="Which text it is searched in."
    )
    description: str = Field(default="", description="What a match means (shown in reasons).")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _valid_regex(value)


DEFAULT_PATTERNS: tuple[SftPattern, ...] = (
    SftPattern(
        name="unfilled_placeholder",
        regex=r"\{\{\s*[A-Za-z_][A-Za-z0-9_.]*\s*\}\}|\{[A-Za-z_][A-Za-z0-9_]*\}",
        field="both",
        description="an unfilled template placeholder like {name} or {{name}}",
    ),
    SftPattern(
        name="ai_disclaimer",
        regex=r"(?i)\bas an ai(?: language)? model\b",
        description="a model disclaimer copied from a generator",
    ),
    SftPattern(
        name="chat_template_token",
        regex=r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id)\|>"
        r"|\[/?INST\]|</s>",
        field="both",
        description="a chat-template or end-of-text token left in the text",
    ),
    SftPattern(
        name="truncation_marker",
        regex=r"(?i)[\[<(](?:truncated|output truncated|cut off|continued)[\]>)]",
        description="a marker that the text was cut",
    ),
)


class SftRules(BaseModel):
    """The spec's `sft:` section: what instruction-response rows must look like.

    Length bounds are inclusive and off (null) unless set. Tokens are runs of
    non-whitespace, a tokenizer-free proxy (roughly 0.75 model tokens per word in English).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_roles: list[str] = Field(
        default_factory=lambda: ["system", "user", "assistant"],
        min_length=1,
        description="Roles a chat message may have.",
    )
    allow_consecutive_user_turns: bool = Field(
        default=False,
        description="Allow user, user, assistant. Off by default: many chat templates "
        "(Llama 2, Mistral) raise on roles that do not alternate.",
    )
    min_prompt_chars: int | None = Field(default=None, ge=0)
    max_prompt_chars: int | None = Field(default=None, ge=0)
    min_response_chars: int | None = Field(default=None, ge=0)
    max_response_chars: int | None = Field(default=None, ge=0)
    min_prompt_tokens: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)
    min_response_tokens: int | None = Field(default=None, ge=0)
    max_response_tokens: int | None = Field(default=None, ge=0)
    reject_echo: bool = Field(
        default=True, description="Quarantine a response that repeats the prompt."
    )
    patterns: list[SftPattern] = Field(
        default_factory=lambda: list(DEFAULT_PATTERNS),
        description="Patterns that quarantine a row; replaces the defaults when given.",
    )
    extra_patterns: list[SftPattern] = Field(
        default_factory=list, description="Patterns added to `patterns` (keeps the defaults)."
    )
    truncation_chars: int | None = Field(
        default=None,
        ge=1,
        description="A response this long (or longer) that does not end a sentence is "
        "truncated; set it to the generator's length limit (or max_response_chars).",
    )
    truncation_tokens: int | None = Field(
        default=None, ge=1, description="The same, in whitespace tokens."
    )
    sentence_end: str = Field(
        default=r"""[.!?…。！？:;)\]"'”’`*]\s*$""",
        description="A response matching this regex ends a sentence (truncated check).",
    )
    quarantine_conflicts: bool = Field(
        default=False,
        description="Quarantine every row of a prompt that has different responses "
        "(default: report them only).",
    )

    @field_validator("sentence_end")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _valid_regex(value)

    @model_validator(mode="after")
    def _consistent(self) -> SftRules:
        for side in ("prompt", "response"):
            for unit in ("chars", "tokens"):
                lo = getattr(self, f"min_{side}_{unit}")
                hi = getattr(self, f"max_{side}_{unit}")
                if lo is not None and hi is not None and lo > hi:
                    raise ValueError(f"min_{side}_{unit} {lo} > max_{side}_{unit} {hi}")
        names = [p.name for _, p in self.all_patterns()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"pattern name(s) {repeated} used more than once")
        return self

    def needs_tokens(self) -> bool:
        """Whether a rule reads whitespace-token counts."""
        return self.truncation_tokens is not None or any(
            getattr(self, f"{b}_{s}_tokens") is not None
            for b in ("min", "max")
            for s in ("prompt", "response")
        )

    def all_patterns(self) -> list[tuple[str, SftPattern]]:
        """(spec key, pattern) for `patterns` then `extra_patterns`."""
        return [("sft.patterns", p) for p in self.patterns] + [
            ("sft.extra_patterns", p) for p in self.extra_patterns
        ]
