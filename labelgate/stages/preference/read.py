"""Preference data in: three shapes and two Label Studio exports, one judgment frame out.

Preference data arrives as

- **judgments** (long pairwise form): one row per judgment, `prompt`, `response_a` (shown
  first), `response_b`, `preference` (a | b | tie) and `annotator`;
- **binarized** pairs: `prompt`, `chosen`, `rejected` (read as a judgment for `a` with no
  annotator; the display order is unknown, so no position bias is measured on them);
- **rankings**: `prompt`, `responses` (a list), `ranking` (each response's rank, 1 = best,
  equal ranks tie) and optionally `annotator`, expanded to one judgment per pair of
  responses (i < j: `response_a` is the one listed first).

A prompt may be text or a chat list of `{role, content}` (a list column or JSON text); a
response may be text or a chat list too (its last turn's content is the response).
`to_judgments` maps any shape to `JUDGMENT_SCHEMA`:

- `id` (String): the source id column when the data has it, else ``<prefix><row>``
  (rankings: ``<id>:<i>-<j>``, the positions of the two responses);
- `prompt` (String): the text, or the non-system turns' contents joined by a blank line;
- `prompt_messages` (List(Struct{role, content})): the chat prompt; ``[user: prompt]``
  for a text prompt;
- `response_a`, `response_b` (String);
- `preference` (String): ``a``, ``b`` or ``tie`` by the value map, else the raw value (the
  checks quarantine it) and null when missing; `preference_raw` the value as given;
- `annotator` (String, null without one); `shape` (String); then the source's other
  columns (metadata, kept as they are; a rankings row's go to each of its pairs) and
  `_batch`/`_row` when the input had them.

Label Studio JSON exports (the `Pairwise` and `Ranker` tags) become the judgments and
rankings shapes: `pairwise_judgments` and `ranker_rankings` read task objects (a run's
lake batch holds them as JSON text, one task per row: `from_label_studio`), and
`read_label_studio_pairwise` / `read_label_studio_ranker` a file. Errors name the file
(`where`), the task and row, and the field (with its spec key).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.errors import InputError
from labelgate.stages.preference.settings import PreferenceColumns, Shape

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})
JUDGMENT_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "prompt": pl.String,
    "prompt_messages": pl.List(MESSAGE),
    "response_a": pl.String,
    "response_b": pl.String,
    "preference": pl.String,
    "preference_raw": pl.String,
    "annotator": pl.String,
    "shape": pl.String,
}
_PASSTHROUGH = ("_batch", "_row")
_TURN_SEP = "\n\n"
_DEFAULT_MAP = {"a": "a", "b": "b", "tie": "tie"}


def _require(df: pl.DataFrame, names: Sequence[tuple[str, str]], *, where: str,
             shape: str) -> None:
    missing = [f"{col!r} (preference.columns.{key})" for key, col in names
               if col not in df.columns]
    if missing:
        shown = [c for c in df.columns if not c.startswith("_")]
        raise InputError(f"{where}: shape {shape!r} needs column(s) {', '.join(missing)}; "
                         f"the data has {shown}")


def _rows(df: pl.DataFrame) -> pl.Series:
    """The source row numbers (the readers' `_row`, else 1-based positions)."""
    if "_row" in df.columns:
        return df.get_column("_row")
    return pl.Series("_row", range(1, df.height + 1))


def _bad_json_row(df: pl.DataFrame, name: str, *, where: str, key: str) -> InputError:
    rows = _rows(df)
    for i, value in enumerate(df.get_column(name)):
        if value is None:
            continue
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            return InputError(f"{where}: row {rows[i]}, column {name!r} (preference.columns."
                              f"{key}): not JSON: {exc.msg}: {value[:80]!r}")
        if not isinstance(parsed, list) or not all(
                isinstance(t, dict) and {"role", "content"} <= set(t) for t in parsed):
            return InputError(f"{where}: row {rows[i]}, column {name!r} (preference.columns."
                              f"{key}): expected a list of {{role, content}} objects, got "
                              f"{value[:80]!r}")
    return InputError(f"{where}: column {name!r} (preference.columns.{key}): the chat lists "
                      "do not share one shape ({role, content} objects expected)")


def _chat(name: str) -> str:
    return f"__chat_{name}"


def _decoded(df: pl.DataFrame, name: str, *, where: str, key: str) -> pl.Series:
    """Column `name` (text) as List(MESSAGE) where a value is a JSON chat list (it starts
    with ``[{``), null elsewhere; a list that does not parse is an error naming the row."""
    text = df.get_column(name)
    is_chat = text.str.strip_chars_start().str.starts_with("[{").fill_null(False)
    if not is_chat.any():
        return pl.Series(_chat(name), [None] * df.height, dtype=pl.List(MESSAGE))
    only = pl.when(is_chat).then(text).otherwise(pl.lit("null"))  # JSON null elsewhere
    try:
        return df.select(only.str.json_decode(pl.List(MESSAGE)).alias(_chat(name))
                         ).to_series()
    except pl.exceptions.PolarsError:
        raise _bad_json_row(df.filter(is_chat), name, where=where, key=key) from None


def _turns(df: pl.DataFrame, name: str, *, where: str, key: str) -> pl.DataFrame:
    """`df` with column `name` as text and ``__chat_<name>`` as List(MESSAGE): the chat
    turns of a list column or of JSON text (row by row: a file may mix text and chat
    lists), null for a text value."""
    dtype = df.schema[name]
    if dtype == pl.String:
        return df.with_columns(_decoded(df, name, where=where, key=key))
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        fields = {f.name for f in dtype.inner.fields}
        if not {"role", "content"} <= fields:
            raise InputError(f"{where}: column {name!r} (preference.columns.{key}): turns "
                             f"need fields role and content; they have {sorted(fields)}")
        turns = pl.col(name).list.eval(pl.struct(
            pl.element().struct.field("role").cast(pl.String),
            pl.element().struct.field("content").cast(pl.String)))
        return df.with_columns(turns.alias(_chat(name)),
                               pl.lit(None, pl.String).alias(name))
    if dtype == pl.Null or dtype.is_numeric():
        return df.with_columns(pl.col(name).cast(pl.String),
                               pl.lit(None, pl.List(MESSAGE)).alias(_chat(name)))
    raise InputError(f"{where}: column {name!r} (preference.columns.{key}) holds {dtype}; "
                     "expected text or a list of {role, content}")


def _prompt_columns(name: str) -> list[pl.Expr]:
    """`prompt` (text) and `prompt_messages` (turns) from the prompt column (`_turns`)."""
    col, chat = pl.col(name), pl.col(_chat(name))
    chat_text = chat.list.eval(
        pl.element().filter(pl.element().struct.field("role") != "system")
        .struct.field("content")).list.join(_TURN_SEP)
    as_turn = pl.when(col.is_not_null()).then(pl.concat_list(pl.struct(
        pl.lit("user").alias("role"), col.alias("content"))))
    return [pl.when(chat.is_not_null()).then(chat_text).otherwise(col).alias("prompt"),
            pl.when(chat.is_not_null()).then(chat).otherwise(as_turn).alias("prompt_messages")]


def _response(name: str) -> pl.Expr:
    """A response as text: the last turn's content of a chat list (`_turns`)."""
    chat = pl.col(_chat(name))
    return pl.when(chat.is_not_null()).then(chat.list.last().struct.field("content")
                                            ).otherwise(pl.col(name))


def _ids(df: pl.DataFrame, id_column: str | None, prefix: str) -> pl.Expr:
    if id_column is not None and id_column in df.columns:
        return pl.col(id_column).cast(pl.String)
    return pl.concat_str(pl.lit(prefix), _rows(df).cast(pl.String).alias("__row"))


def _preference(raw: pl.Expr, value_map: Mapping[str, str]) -> list[pl.Expr]:
    text = raw.cast(pl.String)
    mapped = text.str.strip_chars().replace(dict(value_map))
    return [mapped.alias("preference"), text.alias("preference_raw")]


def _others(df: pl.DataFrame, used: Sequence[str | None]) -> list[str]:
    """The source's columns no role reads (metadata carried along)."""
    return [c for c in df.columns if c not in used and c not in JUDGMENT_SCHEMA
            and not c.startswith("_")]


def _finish(df: pl.DataFrame, selected: pl.DataFrame, shape: str,
            keep: Sequence[str] = ()) -> pl.DataFrame:
    extra = [*keep, *(c for c in _PASSTHROUGH if c in df.columns)]
    out = pl.concat([selected, df.select(extra)], how="horizontal") if extra else selected
    out = out.with_columns(pl.lit(shape).alias("shape"))
    return out.select(*JUDGMENT_SCHEMA, *extra).cast(pl.Schema(JUDGMENT_SCHEMA))


def to_judgments(
    df: pl.DataFrame,
    *,
    shape: Shape,
    columns: PreferenceColumns | None = None,
    value_map: Mapping[str, str] | None = None,
    id_column: str | None = "id",
    id_prefix: str = "row-",
    where: str = "sources.items",
) -> pl.DataFrame:
    """One judgment per row (`JUDGMENT_SCHEMA`, see the module docstring) from any shape.

    Parameters
    ----------
    df : pl.DataFrame
        Source rows, shape (n_rows, k); `_batch`/`_row` are carried through.
    shape : {"judgments", "binarized", "rankings"}
    columns : PreferenceColumns
        The source column names (defaults: the shapes' own).
    value_map : Mapping[str, str]
        Raw preference value -> a | b | tie (default: a, b, tie themselves).
    id_column, id_prefix
        The id column when the data has one; else ids are `id_prefix` + the row number.
    where : str
        The file, for errors.

    Returns
    -------
    pl.DataFrame
        Shape (n_judgments, 9 [+2]): n_rows for judgments and binarized, sum of
        n(n-1)/2 over rows for rankings.
    """
    cols = columns or PreferenceColumns()
    vmap = value_map or _DEFAULT_MAP
    if shape == "rankings":
        return _from_rankings(df, cols, vmap, id_column=id_column, id_prefix=id_prefix,
                              where=where)
    if shape == "judgments":
        need = [("prompt", cols.prompt), ("response_a", cols.response_a),
                ("response_b", cols.response_b), ("preference", cols.preference)]
        a, b = cols.response_a, cols.response_b
    else:
        need = [("prompt", cols.prompt), ("chosen", cols.chosen), ("rejected", cols.rejected)]
        a, b = cols.chosen, cols.rejected
    _require(df, need, where=where, shape=shape)
    for key, name in need[:3]:
        df = _turns(df, name, where=where, key=key)
    annotator = (pl.col(cols.annotator).cast(pl.String)
                 if shape == "judgments" and cols.annotator in df.columns else
                 pl.lit(None, pl.String))
    keep = _others(df, [c for _, c in need] + [cols.annotator, id_column])
    pref = (_preference(pl.col(cols.preference), vmap) if shape == "judgments"
            else [pl.lit("a").alias("preference"), pl.lit(None, pl.String)
                  .alias("preference_raw")])
    selected = df.select(
        _ids(df, id_column, id_prefix).alias("id"), *_prompt_columns(cols.prompt),
        _response(a).cast(pl.String).alias("response_a"),
        _response(b).cast(pl.String).alias("response_b"),
        *pref, annotator.alias("annotator"),
    )
    return _finish(df, selected, shape, keep)


def _list_column(df: pl.DataFrame, name: str, inner: Any, *, where: str,
                 key: str) -> pl.DataFrame:
    dtype = df.schema[name]
    if dtype == pl.String:
        try:
            return df.with_columns(pl.col(name).str.json_decode(pl.List(inner)))
        except pl.exceptions.PolarsError:
            raise InputError(f"{where}: column {name!r} (preference.columns.{key}): not a "
                             f"JSON list of {inner} in every row") from None
    if not isinstance(dtype, pl.List):
        raise InputError(f"{where}: column {name!r} (preference.columns.{key}) holds "
                         f"{dtype}; expected a list")
    try:
        return df.with_columns(pl.col(name).cast(pl.List(inner)))
    except pl.exceptions.PolarsError:
        raise InputError(f"{where}: column {name!r} (preference.columns.{key}): list "
                         f"items are not {inner}") from None


def _from_rankings(df: pl.DataFrame, cols: PreferenceColumns, vmap: Mapping[str, str], *,
                   id_column: str | None, id_prefix: str, where: str) -> pl.DataFrame:
    """Rankings expanded to one judgment per pair of responses (i < j)."""
    _require(df, [("prompt", cols.prompt), ("responses", cols.responses),
                  ("ranking", cols.ranking)], where=where, shape="rankings")
    df = _turns(df, cols.prompt, where=where, key="prompt")
    df = _list_column(df, cols.responses, pl.String, where=where, key="responses")
    df = _list_column(df, cols.ranking, pl.Float64, where=where, key="ranking")
    rows = _rows(df)
    n_resp = df.get_column(cols.responses).list.len()
    n_rank = df.get_column(cols.ranking).list.len()
    bad = (n_resp != n_rank).fill_null(True) | df.get_column(cols.ranking).list.eval(
        pl.element().is_null()).list.any().fill_null(True)
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(f"{where}: row {rows[i]}, column {cols.ranking!r} (preference."
                         f"columns.ranking): {n_rank[i]} ranks for {n_resp[i]} responses "
                         "(one rank per response expected, none missing)")
    annotator = (pl.col(cols.annotator).cast(pl.String) if cols.annotator in df.columns
                 else pl.lit(None, pl.String))
    keep = _others(df, [cols.prompt, cols.responses, cols.ranking, cols.annotator, id_column])
    base = df.select(
        _ids(df, id_column, id_prefix).alias("__id"), *_prompt_columns(cols.prompt),
        pl.col(cols.responses).alias("__r"), pl.col(cols.ranking).alias("__k"),
        annotator.alias("annotator"), *keep, *[c for c in _PASSTHROUGH if c in df.columns],
    )
    n = pl.col("__r").list.len()
    pairs = (base.with_columns(pl.int_ranges(0, n).alias("__i")).explode("__i")
             .with_columns(pl.int_ranges(pl.col("__i") + 1, n).alias("__j")).explode("__j")
             .drop_nulls("__j"))
    ka, kb = pl.col("__k").list.get(pl.col("__i")), pl.col("__k").list.get(pl.col("__j"))
    pref = pl.when(ka < kb).then(pl.lit("a")).when(ka > kb).then(pl.lit("b")).otherwise(
        pl.lit("tie"))
    out = pairs.with_columns(
        pl.format("{}:{}-{}", "__id", "__i", "__j").alias("id"),
        pl.col("__r").list.get(pl.col("__i")).alias("response_a"),
        pl.col("__r").list.get(pl.col("__j")).alias("response_b"),
        pref.alias("preference"), pl.lit(None, pl.String).alias("preference_raw"),
    )
    return _finish(out, out.select(c for c in JUDGMENT_SCHEMA if c != "shape"), "rankings",
                   keep)


# --- Label Studio exports --------------------------------------------------------------

Task = tuple[int, Mapping[str, Any]]  # (row: the task's 1-based position in the export, task)
Fields = Mapping[str, tuple[str, str | None]]  # role -> (data field, the key naming it)
_PAIRWISE_SCHEMA = {"id": pl.String, "prompt": pl.String, "response_a": pl.String,
                    "response_b": pl.String, "preference": pl.String,
                    "annotator": pl.String, "_row": pl.Int64}
_RANKER_SCHEMA = {"id": pl.String, "prompt": pl.String, "responses": pl.List(pl.String),
                  "ranking": pl.List(pl.Float64), "annotator": pl.String, "_row": pl.Int64}


def label_studio_tasks(path: Path) -> list[dict[str, Any]]:
    """The task objects of a Label Studio JSON export (`InputError` naming the file)."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a Label Studio JSON export: {exc}") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise InputError(f"{path}: a Label Studio JSON export is a list of task objects")
    return tasks


def _annotator(ann: Mapping[str, Any]) -> str | None:
    who = ann.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("id", who.get("email"))
    return None if who is None else str(who)


def _at(where: str, row: int, task: Mapping[str, Any]) -> str:
    return f"{where}: task {task.get('id', row)} (row {row})"


def _field(data: Mapping[str, Any], fields: Fields, role: str, *, at: str) -> Any:
    name, key = fields[role]
    if name not in data:
        named = f" ({key})" if key else ""
        raise InputError(f"{at}: data has no field {name!r}{named}; it has {sorted(data)}")
    return data[name]


def _results(task: Mapping[str, Any], kind: str, skipped: dict[str, int]
             ) -> list[tuple[Mapping[str, Any], Any]]:
    """(annotation, value) of each non-cancelled annotation's first `kind` result;
    `skipped` counts the cancelled annotations and those without such a result."""
    out = []
    for ann in task.get("annotations") or []:
        if ann.get("was_cancelled"):
            skipped["cancelled"] += 1
            continue
        found = [r.get("value") or {} for r in ann.get("result") or []
                 if isinstance(r, Mapping) and r.get("type") == kind]
        if found:
            out.append((ann, found[0]))
        else:
            skipped[f"without_{kind}"] += 1
    if not out:
        skipped["tasks_without_judgment"] += 1
    return out


def _new_counts(kind: str) -> dict[str, int]:
    return {"tasks": 0, "annotations": 0, "cancelled": 0, f"without_{kind}": 0,
            "tasks_without_judgment": 0}


def pairwise_judgments(tasks: Iterable[Task], *, where: str, fields: Fields
                       ) -> tuple[pl.DataFrame, dict[str, int]]:
    """Label Studio `Pairwise` tasks as judgments, and what was skipped.

    Parameters
    ----------
    tasks : iterable of (row, task)
        Each task object with its 1-based position in the export.
    where : str
        The file, for errors.
    fields : mapping
        Data fields by role: prompt, a (the left response, read as `response_a`) and b;
        each with the spec key or option naming it (for errors), or None.

    Returns
    -------
    (judgments, counts)
        judgments: one row per annotation (`_PAIRWISE_SCHEMA`: id ``<task id>-<annotation
        id>``, preference a for ``left``, b for ``right``, annotator `completed_by`, `_row`
        the task's row); counts: tasks, annotations read, cancelled, without_pairwise,
        tasks_without_judgment.
    """
    rows: list[dict[str, Any]] = []
    counts = _new_counts("pairwise")
    for t, task in tasks:
        counts["tasks"] += 1
        data, at = task.get("data") or {}, _at(where, t, task)
        for ann, value in _results(task, "pairwise", counts):
            selected = value.get("selected")
            if selected not in ("left", "right"):
                raise InputError(f"{at}, annotation {ann.get('id')}: pairwise value selected "
                                 f"is {selected!r}; expected left or right")
            rows.append({
                "id": f"{task.get('id', t)}-{ann.get('id', len(rows))}",
                "prompt": _text(_field(data, fields, "prompt", at=at)),
                "response_a": _text(_field(data, fields, "a", at=at)),
                "response_b": _text(_field(data, fields, "b", at=at)),
                "preference": "a" if selected == "left" else "b",
                "annotator": _annotator(ann), "_row": t,
            })
    counts["annotations"] = len(rows)
    return _frame(rows, _PAIRWISE_SCHEMA, where=where), counts


def _text(value: Any) -> str | None:
    """A data field as text: a chat list (or any non-text value) as JSON, which
    `to_judgments` reads back as the chat turns."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def _frame(rows: list[dict[str, Any]], schema: Mapping[str, Any], *, where: str
           ) -> pl.DataFrame:
    try:
        return pl.DataFrame(rows, schema=dict(schema))
    except (pl.exceptions.PolarsError, TypeError) as exc:
        raise InputError(f"{where}: task data do not fit {list(schema)}: {exc}") from None


def _ranker_order(value: Mapping[str, Any], ids: list[str], *, at: str) -> list[float]:
    """Each item's rank from a `Ranker` value: buckets in order are rank levels (1, 2, ...);
    one bucket is an ordering (rank = position)."""
    ranker = value.get("ranker")
    if not isinstance(ranker, Mapping) or not ranker:
        raise InputError(f"{at}: ranker value is {value!r}; expected "
                         "{'ranker': {bucket: [item ids]}}")
    buckets = [list(v) for v in ranker.values()]
    rank: dict[str, float] = {}
    if len(buckets) == 1:
        rank = {str(i): float(p) for p, i in enumerate(buckets[0], start=1)}
    else:
        rank = {str(i): float(level) for level, b in enumerate(buckets, start=1) for i in b}
    missing = [i for i in ids if i not in rank]
    if missing:
        raise InputError(f"{at}: items {missing} are not ranked")
    return [rank[i] for i in ids]


def ranker_rankings(tasks: Iterable[Task], *, where: str, fields: Fields
                    ) -> tuple[pl.DataFrame, dict[str, int]]:
    """Label Studio `Ranker` tasks as rankings, and what was skipped.

    `fields` names the data fields by role: prompt, items (the list of item objects) and
    text (each item's text field). Returns one row per annotation (`_RANKER_SCHEMA`:
    responses in the items' order, ranking: buckets in order are rank levels, a single
    bucket's order is the ranking) and the counts of `pairwise_judgments`.
    """
    rows: list[dict[str, Any]] = []
    counts = _new_counts("ranker")
    for t, task in tasks:
        counts["tasks"] += 1
        data, at = task.get("data") or {}, _at(where, t, task)
        judged = _results(task, "ranker", counts)
        if not judged:
            continue
        items = _field(data, fields, "items", at=at)
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise InputError(f"{at}: field {fields['items'][0]!r} is not a list of item "
                             "objects")
        text_field = fields["text"][0]
        no_text = [p for p, i in enumerate(items) if text_field not in i]
        if no_text:
            raise InputError(f"{at}: item {no_text[0]} of {fields['items'][0]!r} has no "
                             f"field {text_field!r} ({fields['text'][1] or 'text field'})")
        ids = [str(i.get("id", p)) for p, i in enumerate(items)]
        for ann, value in judged:
            rows.append({
                "id": f"{task.get('id', t)}-{ann.get('id', len(rows))}",
                "prompt": _text(_field(data, fields, "prompt", at=at)),
                "responses": [_text(i[text_field]) for i in items],
                "ranking": _ranker_order(value, ids, at=f"{at}, annotation {ann.get('id')}"),
                "annotator": _annotator(ann), "_row": t,
            })
    counts["annotations"] = len(rows)
    return _frame(rows, _RANKER_SCHEMA, where=where), counts


def read_label_studio_pairwise(
    path: str | Path, *, prompt_field: str = "prompt", a_field: str = "answer1",
    b_field: str = "answer2",
) -> pl.DataFrame:
    """A Label Studio export of a `Pairwise` project as judgments (`pairwise_judgments`):
    id, prompt, response_a (`a_field`, the left one), response_b, preference, annotator
    and `_row`; cancelled annotations are skipped. Shape (n_annotations, 7)."""
    path = Path(path)
    fields = {"prompt": (prompt_field, None), "a": (a_field, None), "b": (b_field, None)}
    return pairwise_judgments(enumerate(label_studio_tasks(path), start=1), where=str(path),
                              fields=fields)[0]


def read_label_studio_ranker(
    path: str | Path, *, prompt_field: str = "prompt", items_field: str = "items",
    text_field: str = "body",
) -> pl.DataFrame:
    """A Label Studio export of a `Ranker` project as rankings (`ranker_rankings`): id,
    prompt, responses, ranking, annotator and `_row`. Shape (n_annotations, 6)."""
    path = Path(path)
    fields = {"prompt": (prompt_field, None), "items": (items_field, None),
              "text": (text_field, None)}
    return ranker_rankings(enumerate(label_studio_tasks(path), start=1), where=str(path),
                           fields=fields)[0]


def from_label_studio(rows: pl.DataFrame, *, shape: Shape, fields: Fields, where: str
                      ) -> tuple[pl.DataFrame, dict[str, int]]:
    """A lake batch of a Label Studio export (one task per row: `_row`, `task` as JSON
    text) as the judgments or rankings frame of `pairwise_judgments` / `ranker_rankings`,
    with `_batch` carried along; and the counts of what was skipped."""
    if shape == "binarized":
        raise InputError(f"{where}: a Label Studio export is a Pairwise project (preference."
                         "shape: judgments) or a Ranker project (rankings), not binarized")
    tasks = ((int(r), json.loads(t)) for r, t in zip(rows.get_column("_row"),
                                                     rows.get_column("task"), strict=True))
    read = pairwise_judgments if shape == "judgments" else ranker_rankings
    frame, counts = read(tasks, where=where, fields=fields)
    if "_batch" in rows.columns and rows.height:
        frame = frame.with_columns(pl.lit(rows.get_column("_batch")[0]).alias("_batch"))
    return frame, counts
