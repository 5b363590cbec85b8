"""The review stage's sections: reviewer corrections applied this run (``review``) and
the instruction-data checks (``sft``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelgate.report.sections.generic import _rest_parts
from labelgate.report.view import (
    Cell,
    Part,
    Section,
    _float,
    _mapping,
    _records,
    excerpt,
    fmt_num,
)


def review_view(rv: Mapping[str, Any]) -> Section:
    """Reviewer corrections applied this run (``labelgate review import`` overlays)."""
    def n(key: str) -> str:
        """A count of the section, 0 when absent."""
        return fmt_num(rv.get(key, 0))

    sec = Section("x-review", "Review")
    sec.add(Part("text", text=(
        f"{n('n_ids_corrected')} rows carry a reviewer's label ({n('n_changed')} changed, "
        f"{n('n_confirmed')} confirmed) from {n('n_corrections')} corrections in the "
        f"overlay; {n('n_not_in_valid')} corrected ids are not among this run's valid rows, "
        f"{n('n_stale')} corrections were made against a source label that has changed "
        "since.")))
    sec.table(_records(
        rv.get("reviewer_gold_accuracy"), ["reviewer", "gold items", "correct", "accuracy"],
        lambda a: [Cell(excerpt(a.get("reviewer"), 40), "mono"), a.get("n_gold"),
                   a.get("n_correct"), _float(a.get("accuracy"))],
        caption="Reviewer accuracy on gold items", numeric={1, 2, 3}))
    sec.parts += _rest_parts(rv, known=(
        "n_ids_corrected", "n_changed", "n_confirmed", "n_corrections", "n_not_in_valid",
        "n_stale", "reviewer_gold_accuracy"))
    return sec


def sft_view(sft: Mapping[str, Any]) -> Section:
    """Instruction data: rows quarantined per SFT check, and conflicting responses."""
    sec = Section("x-sft", "Instruction data (SFT checks)")
    sec.add(Part("text", text=(
        f"{fmt_num(sft.get('quarantined_rows'))} rows quarantined by the SFT checks (the "
        "rows and reasons are among the contract failures above).")))
    sec.table(_records(
        sft.get("by_check"), ["check", "rows", "example reason"],
        lambda c: [Cell(str(c.get("check", "")), "mono"), c.get("rows"),
                   Cell(excerpt(c.get("example")))], numeric={1}))
    c = _mapping(sft.get("conflicts"))
    if c is not None:
        action = ("quarantined (sft.quarantine_conflicts)" if c.get("quarantined")
                  else "reported only")
        sec.add(Part("text", text=(
            f"Conflicting responses (same prompt, different responses): "
            f"{fmt_num(c.get('rows'))} rows in {fmt_num(c.get('groups'))} groups, {action}; "
            "DuckDB table conflicting_responses.")))
        sec.table(_records(
            c.get("examples"), ["group", "row", "id", "prompt", "response"],
            lambda e: [e.get("conflict"), e.get("row"), Cell(excerpt(e.get("id"), 40), "mono"),
                       Cell(excerpt(e.get("prompt")), "text"),
                       Cell(excerpt(e.get("response")), "text")],
            caption="Conflicting responses", numeric={0, 1}))
    sec.parts += _rest_parts(sft, known=("quarantined_rows", "by_check", "conflicts"))
    return sec
