"""The run report: `report.json` for machines, `report.md` for people and Prefect.

Written to `<store>/reports/<dataset>/<run_id>/`; `<store>/reports/<dataset>/latest` is a
symlink to the newest run's folder, replaced atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.gate import GateVerdict
from labelgate.lake import Batch
from labelgate.runs import RunContext, reports_root

EXAMPLES = 20
_CELL_MAX = 80


@dataclass(frozen=True)
class RowCounts:
    """The row arithmetic every report shows: input = valid + quarantined + excluded."""

    input: int
    valid: int
    quarantined: int
    excluded: int = 0

    def balanced(self) -> bool:
        return self.input == self.valid + self.quarantined + self.excluded

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "valid": self.valid,
            "quarantined": self.quarantined,
            "excluded": self.excluded,
            "balanced": self.balanced(),
        }


def build_report(
    run: RunContext,
    *,
    batches: Sequence[Batch],
    rows: RowCounts,
    quarantine: pl.DataFrame,
    classes: pl.DataFrame,
    metrics: Mapping[str, float],
    verdict: GateVerdict,
    paths: Mapping[str, str],
) -> dict[str, Any]:
    """The report as a JSON-ready dict; later stages add sections to it."""
    by_check = (
        quarantine.group_by("column", "check")
        .agg(pl.len().alias("failures"), pl.col("reason").first().alias("example"))
        .sort(["failures", "column", "check"], descending=[True, False, False])
    )
    examples = quarantine.sort("batch", "row", "column").head(EXAMPLES)
    return {
        "dataset": run.dataset,
        "run_id": run.run_id,
        "spec_path": run.spec_path,
        "spec_hash": run.spec_hash,
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows.to_dict(),
        "sources": [
            {
                "source": b.source,
                "batch": b.batch,
                "file": b.file,
                "rows": b.rows,
                "rejected": b.rejected,
                "reused": b.reused,
            }
            for b in batches
        ],
        "quarantine": {
            "rows": rows.quarantined,
            "by_column_check": by_check.to_dicts(),
            "examples": examples.to_dicts(),
        },
        "classes": classes.to_dicts(),
        "metrics": dict(metrics),
        "gate": verdict.to_dict() | {"summary": verdict.summary()},
        "paths": dict(paths),
    }


def md_cell(value: object) -> str:
    """A value safe inside a Markdown table cell: no pipes, newlines or raw HTML."""
    text = "" if value is None else str(value)
    if len(text) > _CELL_MAX:
        text = text[: _CELL_MAX - 1] + "…"
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("\r", " ")
        .replace("\n", " ")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("`", "\\`")
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return out


def _num(value: object) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return "—" if value is None else str(value)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: verdict first, then the arithmetic, then the details."""
    gate = report["gate"]
    rows = report["rows"]
    verdict = "PASSED" if gate["passed"] else "FAILED"
    lines = [
        f"# labelgate: {md_cell(report['dataset'])} — gate {verdict}",
        "",
        f"Run `{report['run_id']}` · spec hash `{report['spec_hash']}` · "
        f"{report['started_at']} → {report['finished_at']}",
        "",
        "## Gate",
        "",
        gate["summary"],
        "",
    ]
    lines += _table(
        ["check", "observed", "threshold", "passed"],
        [
            [c["name"], _num(c["observed"]), _num(c["threshold"]), "yes" if c["passed"] else "NO"]
            for c in gate["checks"]
        ],
    )
    lines += [
        "",
        "## Rows",
        "",
        f"input {rows['input']} = valid {rows['valid']} + quarantined {rows['quarantined']}"
        f" + excluded {rows['excluded']}" + ("" if rows["balanced"] else "  **(DOES NOT ADD UP)**"),
        "",
    ]
    lines += _table(
        ["source", "file", "batch", "rows", "unparseable", "reused"],
        [
            [s["source"], Path(s["file"]).name, s["batch"], s["rows"], s["rejected"], s["reused"]]
            for s in report["sources"]
        ],
    )
    lines += ["", "## Classes (valid rows)", ""]
    lines += _table(["label", "rows"], [[c["label"], c["rows"]] for c in report["classes"]])
    q = report["quarantine"]
    if q["rows"]:
        lines += ["", "## Quarantine by column and check", ""]
        lines += _table(
            ["column", "check", "failures", "example reason"],
            [[r["column"], r["check"], r["failures"], r["example"]] for r in q["by_column_check"]],
        )
        lines += ["", f"First {len(q['examples'])} quarantined cells:", ""]
        lines += _table(
            ["batch", "row", "id", "column", "check", "reason"],
            [
                [e["batch"][:8], e["row"], e["id"], e["column"], e["check"], e["reason"]]
                for e in q["examples"]
            ],
        )
    lines += ["", "## Where things are", ""]
    lines += [f"- {md_cell(k)}: `{v}`" for k, v in report["paths"].items()]
    return "\n".join(lines) + "\n"


def write_report(report: Mapping[str, Any], *, run: RunContext) -> Path:
    """Write report.json and report.md, then point `latest` at this run. Returns the folder."""
    out = run.report_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(render_markdown(report))
    point_latest(reports_root(run.store_dir, run.dataset), run.run_id)
    return out


def point_latest(root: Path, run_id: str) -> None:
    """Atomically replace the `latest` symlink with one to `run_id`."""
    tmp = root / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_id, target_is_directory=True)
    os.replace(tmp, root / "latest")


def read_latest(store: Path, dataset: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest report's folder and its parsed report.json, if any."""
    latest = reports_root(store, dataset) / "latest"
    path = latest / "report.json"
    if not path.is_file():
        return None
    return latest.resolve(), json.loads(path.read_text())
