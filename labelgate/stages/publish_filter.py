"""The publish filter (the spec's ``publish.filter``, applied before publishing; no
``eval``): clauses ``column op value`` joined by ``and``; ``op`` is one of
``== != >= <= > <``; ``value`` is a number, ``true``/``false``, or a quoted string
(``'...'`` or ``"..."``). A null cell fails its clause. `parse_filter` parses,
`filter_expr` builds the polars expression.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from labelgate.errors import InputError

FilterOp = Literal["==", "!=", ">=", "<=", ">", "<"]
FilterValue = str | int | float | bool


@dataclass(frozen=True)
class FilterClause:
    """One `column op value` clause of `publish.filter`."""

    column: str
    op: FilterOp
    value: FilterValue

    def __str__(self) -> str:
        shown = json.dumps(self.value) if isinstance(self.value, str | bool) else self.value
        return f"{self.column} {self.op} {shown}"


_CLAUSE = re.compile(
    r"""\s*(?P<column>[A-Za-z_][A-Za-z0-9_.-]*)\s*(?P<op>==|!=|>=|<=|>|<)\s*"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"=<>!][^\s'"]*)\s*"""
)
_AND = re.compile(r"and(?:\s+|$)")


def _filter_value(raw: str, text: str) -> FilterValue:
    if raw[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(
            f"filter {text!r}: value {raw!r} is not a number or true/false; quote text "
            f"values ('{raw}')"
        ) from None
    if not math.isfinite(number):
        raise ValueError(f"filter {text!r}: value {raw!r} is not a finite number")
    return number


def parse_filter(text: str) -> tuple[FilterClause, ...]:
    """`quality >= 4 and accepted == true` -> clauses; ValueError says where it stopped."""
    clauses: list[FilterClause] = []
    pos = 0
    while True:
        m = _CLAUSE.match(text, pos)
        if m is None:
            raise ValueError(
                f"filter {text!r}: expected `column op value` at character {pos + 1} "
                f"({text[pos:pos + 20]!r}); op is one of == != >= <= > <"
            )
        op: FilterOp = m["op"]  # type: ignore[assignment]
        clauses.append(FilterClause(m["column"], op, _filter_value(m["value"], text)))
        pos = m.end()
        if pos == len(text):
            return tuple(clauses)
        joiner = _AND.match(text, pos)
        if joiner is None:
            raise ValueError(
                f"filter {text!r}: expected `and` or the end at character {pos + 1} "
                f"({text[pos:pos + 20]!r})"
            )
        pos = joiner.end()


def _clause_expr(c: FilterClause, schema: Mapping[str, Any], where: str) -> pl.Expr:
    if c.column not in schema:
        shown = [k for k in schema if not k.startswith("_")]
        raise InputError(f"{where}: column {c.column!r} not in the rows; they have {shown}")
    dtype = schema[c.column]
    numeric = isinstance(c.value, int | float) and not isinstance(c.value, bool)
    if numeric and not dtype.is_numeric():
        raise InputError(
            f"{where}: {c} compares {c.column!r} ({dtype}) with a number; quote the value "
            f"to compare text, or set contract.{c.column}.dtype"
        )
    if isinstance(c.value, bool) and dtype != pl.Boolean:
        raise InputError(f"{where}: {c} needs a bool column; {c.column!r} is {dtype}")
    if isinstance(c.value, str) and dtype != pl.String:
        raise InputError(f"{where}: {c} compares {c.column!r} ({dtype}) with text")
    col, v = pl.col(c.column), pl.lit(c.value)
    ops = {"==": col == v, "!=": col != v, ">=": col >= v, "<=": col <= v, ">": col > v,
           "<": col < v}
    return ops[c.op].fill_null(False)


def filter_expr(
    clauses: Sequence[FilterClause], schema: Mapping[str, Any], *, where: str = "publish.filter"
) -> tuple[pl.Expr, pl.Expr]:
    """(keep, reason): `keep` is true where every clause holds (a null cell fails);
    `reason` names the first failing clause and the row's value."""
    keep = pl.lit(True)
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for c in reversed(clauses):
        ok = _clause_expr(c, schema, where)
        keep = keep & ok
        value = pl.col(c.column).cast(pl.String).fill_null("null")
        text = pl.concat_str(pl.lit(f"{c.column} is "), value, pl.lit(f": fails {where} {c}"))
        reason = pl.when(~ok).then(text).otherwise(reason)
    return keep, reason
