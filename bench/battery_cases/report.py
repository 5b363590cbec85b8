"""The battery's table: on the terminal (rich) and as Markdown in docs/reliability.md."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.battery_cases.harness import Outcome

START = "<!-- battery:start (bench/battery.py writes this block) -->"
END = "<!-- battery:end -->"


def print_table(outcomes: list[Outcome]) -> None:
    table = Table("group", "case", "outcome", "rows in", "accounted for", "lost", "passed",
                  title="reliability battery")
    for o in outcomes:
        table.add_row(o.group, o.case, o.outcome, str(o.rows_in), str(o.accounted),
                      str(o.lost), "yes" if o.passed else "[red]NO[/red]")
    Console(width=200).print(table)


def _cell(text: str) -> str:
    """Table-safe Markdown: pipes escaped, no line breaks, code spans left alone."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown(outcomes: list[Outcome], *, context: str) -> str:
    passed = sum(o.passed for o in outcomes)
    lost = sum(max(o.lost, 0) for o in outcomes)
    lines = [
        f"{len(outcomes)} cases, {passed} passed, {len(outcomes) - passed} failed; "
        f"rows in {sum(o.rows_in for o in outcomes):,}, rows lost: {lost}.",
        "",
        f"Measured: {context}.",
        "",
        "| group | case | outcome | rows in | accounted for | lost |",
        "|---|---|---|---:|---:|---:|",
    ]
    for o in outcomes:
        outcome = o.outcome if o.passed else f"**FAILED**: {'; '.join(o.problems)}"
        lines.append(f"| {o.group} | {_cell(o.case)} | {_cell(outcome)} | {o.rows_in:,} | "
                     f"{o.accounted:,} | {o.lost} |")
    return "\n".join(lines) + "\n"


def write_docs(doc: Path, table: str) -> None:
    """Replace the block between the markers in `doc` (appended when absent)."""
    text = doc.read_text()
    block = f"{START}\n{table}{END}"
    if START in text and END in text:
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)
