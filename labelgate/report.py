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
from typing import TYPE_CHECKING, Any

import polars as pl

from labelgate.gate import GateVerdict
from labelgate.label_issues import JOINT_COUNTED_FILTERS
from labelgate.lake import Batch
from labelgate.runs import RunContext, reports_root

if TYPE_CHECKING:  # sklearn/statsmodels behind it: the CLI's quick commands skip them
    from labelgate.agreement import AgreementReport

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
    agreement: Mapping[str, Any] | None = None,
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
                **({"lines": b.lines, "record_lines": b.record_lines,
                    "blank_lines": b.blank_lines, "rejected_lines": b.rejected_lines,
                    "rejected_at": list(b.rejected_at)} if b.lines is not None else {}),
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
        **({"agreement": dict(agreement)} if agreement is not None else {}),
        "paths": dict(paths),
    }


def agreement_section(
    report: AgreementReport,
    *,
    consensus_method: str,
    n_items_unknown: int,
    n_rows_unknown: int,
    n_unparseable: int,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """report.json's `agreement` section: `AgreementReport.to_dict()` plus how the
    annotations relate to the items, which consensus is the training label, and the
    spec's agreement settings used (`settings`, for reproducing the figures)."""
    section = report.to_dict()
    notes = list(section["notes"])
    if n_items_unknown:
        notes.append(
            f"{n_items_unknown} annotated item(s) ({n_rows_unknown} annotation rows) are not "
            "among the run's valid items; they still count towards agreement"
        )
    if n_unparseable:
        notes.append(f"{n_unparseable} annotation/gold record(s) could not be parsed (skipped)")
    return section | {
        "consensus_method": consensus_method,
        "consensus_applied_to_items": False,
        "n_items_not_in_items": n_items_unknown,
        "n_rows_not_in_items": n_rows_unknown,
        "n_unparseable_records": n_unparseable,
        "settings": dict(settings or {}),
        "notes": notes,
    }


def md_cell(value: object, *, max_len: int | None = _CELL_MAX) -> str:
    """A value safe inside a Markdown table cell: no pipes, newlines or raw HTML; cut to
    `max_len` characters (None: not cut, for prose such as notes)."""
    if isinstance(value, bool):  # people read yes/no, not Python's True/False
        text = "yes" if value else "no"
    else:
        text = "" if value is None else str(value)
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 1] + "…"
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


def csv_lines_text(sources: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per CSV input file with the arithmetic of its physical lines and the
    line numbers of its rejected records (empty when no source is CSV)."""
    out = []
    for s in sources:
        if s.get("lines") is None:
            continue
        lines, records, blank = int(s["lines"]), int(s["record_lines"]), int(s["blank_lines"])
        text = (f"{Path(str(s['file'])).name}: {lines:,} lines = {lines - records - blank:,} "
                f"header + {records:,} in {int(s['rows']) + int(s['rejected']):,} records + "
                f"{blank:,} blank")
        shown = [int(n) for n in s.get("rejected_at") or []]
        if shown:
            more = int(s["rejected_lines"]) - len(shown)
            text += (f"; rejected records cover {int(s['rejected_lines']):,} line(s): "
                     + ", ".join(map(str, shown)) + (f" and {more:,} more" if more else ""))
        out.append(text)
    return out


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
    lines += [f"- {md_cell(t, max_len=None)}" for t in csv_lines_text(report["sources"])]
    lines += [""] if lines[-1] != "" else []
    lines += _table(
        ["source", "file", "batch", "rows", "unparseable", "ingest reused", "contract cached"],
        [
            [s["source"], Path(s["file"]).name, s["batch"], s["rows"], s["rejected"], s["reused"],
             s.get("contract_cached", "")]
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
    if "review" in report:
        lines += _review_markdown(report["review"])
    if "sft" in report:
        lines += _sft_markdown(report["sft"])
    if "agreement" in report:
        lines += _agreement_markdown(report["agreement"])
    if "label_issues" in report:
        lines += _label_issues_markdown(report["label_issues"])
    if "duplicates" in report:
        lines += _duplicates_markdown(report["duplicates"])
    if "splits" in report:
        lines += _splits_markdown(report["splits"], report.get("leakage", {}))
    if "published" in report:
        p = report["published"]
        lines += ["", "## Published", "", f"version v{p['version']} ({p['rows']} rows): "
                  f"`{p['path']}`; `current` points to it."]
    lines += ["", "## Where things are", ""]
    lines += [f"- {md_cell(k)}: `{v}`" for k, v in report["paths"].items()]
    return "\n".join(lines) + "\n"


def _review_markdown(rv: Mapping[str, Any]) -> list[str]:
    """Reviewer corrections applied this run (`labelgate review import` overlays)."""
    lines = [
        "", "## Review", "",
        f"{rv.get('n_ids_corrected', 0)} rows carry a reviewer's label "
        f"({rv.get('n_changed', 0)} changed, {rv.get('n_confirmed', 0)} confirmed) from "
        f"{rv.get('n_corrections', 0)} corrections in the overlay; "
        f"{rv.get('n_not_in_valid', 0)} corrected ids are not among this run's valid rows, "
        f"{rv.get('n_stale', 0)} corrections were made against a source label that has "
        "changed since.",
    ]
    accuracy = rv.get("reviewer_gold_accuracy") or []
    if accuracy:
        lines += ["", "Reviewer accuracy on gold items:", ""]
        lines += _table(["reviewer", "gold items", "correct", "accuracy"],
                        [[a["reviewer"], a["n_gold"], a["n_correct"], _num(a["accuracy"])]
                         for a in accuracy])
    return lines


def _sft_markdown(sft: Mapping[str, Any]) -> list[str]:
    """Instruction data: rows quarantined per SFT check, and conflicting responses."""
    lines = ["", "## Instruction data (SFT checks)", "",
             f"{sft['quarantined_rows']} rows quarantined by the SFT checks (the rows and "
             "reasons are in the quarantine table above)."]
    if sft["by_check"]:
        lines.append("")
        lines += _table(["check", "rows", "example reason"],
                        [[c["check"], c["rows"], c["example"]] for c in sft["by_check"]])
    c = sft["conflicts"]
    action = "quarantined (sft.quarantine_conflicts)" if c["quarantined"] else "reported only"
    lines += ["", f"Conflicting responses (same prompt, different responses): {c['rows']} rows "
              f"in {c['groups']} groups, {action}; DuckDB table `conflicting_responses`."]
    if c["examples"]:
        lines.append("")
        lines += _table(
            ["group", "row", "id", "prompt", "response"],
            [[e["conflict"], e["row"], e["id"], e["prompt"], e["response"]]
             for e in c["examples"]],
        )
    return lines


def _label_issues_markdown(li: Mapping[str, Any]) -> list[str]:
    lines = [
        "", "## Label issues", "",
        f"method {li['method']} ({li['path']} cleanlab path): {li['count']} rows flagged, "
        f"rate {_num(float(li['rate']))}, label health score {_num(float(li['health_score']))}",
        "",
    ]
    if li.get("model"):
        weights = f" ({li['embedding_model']})" if li.get("embedding_model") else ""
        lines += [f"model (out-of-fold probabilities): {li['model']}{weights}", ""]
    if li.get("filter_by"):
        # only these filters take their number of flags from the joint
        counted = str(li["filter_by"]).removesuffix(" (batched)") in JOINT_COUNTED_FILTERS
        how = (f", counted by the {li['joint_calibration']} joint"
               if counted and li.get("joint_calibration") else "")
        lines += [f"flags: filter {li['filter_by']}{how}", ""]
    if li.get("passes") == 2:
        lines += [f"second pass: models trained again without {li['left_out']} rows the first "
                  "pass flagged, every row scored again out of fold", ""]
    if li.get("reused_from"):
        lines += [f"reused from run {li['reused_from']} (same rows, labels, settings and "
                  "model)", ""]
    lines += _table(
        ["class", "rows", "issues", "issue rate", "mean label quality"],
        [[c["class"], c["rows"], c["issues"], _num(float(c["issue_rate"])),
          _num(c["mean_label_quality"])] for c in li["per_class"]],
    )
    joint = [c for c in li["noise_matrix"] if c["given_label"] != c["true_label"]]
    joint.sort(key=lambda c: -float(c["joint"]))
    if joint:
        lines += ["", "Estimated noise (given → likely true, share of all rows):", ""]
        lines += _table(["given", "likely true", "share"],
                        [[c["given_label"], c["true_label"], _num(float(c["joint"]))]
                         for c in joint[:6]])
    if li.get("consensus_comparison"):
        lines += ["", "CROWDLAB consensus vs the agreement stage's:", ""]
        lines += _table(["vs", "items", "differ", "share"],
                        [[c["b"], c["items"], c["differ"], _num(float(c["share"]))]
                         for c in li["consensus_comparison"]])
    if li["top"]:
        lines += ["", "Most suspicious rows:", ""]
        lines += _table(["id", "given", "suggested", "quality", "text"],
                        [[t["id"], t["given"], t["suggested"], _num(t["quality"]), t["text"]]
                         for t in li["top"]])
    return lines


def _duplicates_markdown(d: Mapping[str, Any]) -> list[str]:
    lines = [
        "", "## Duplicates", "",
        f"{d['count']} duplicate rows in {d['clusters']} clusters "
        f"({d['exact_rows']} exact, {d['near_rows']} near; {d['conflicting_clusters']} "
        f"clusters with conflicting labels); policy keep {d['keep']}",
    ]
    if d["largest"]:
        lines += ["", "Largest clusters:", ""]
        lines += _table(["cluster", "size", "example"],
                        [[c["cluster_id"], c["cluster_size"], c.get("example")]
                         for c in d["largest"]])
    if d["conflicting"]:
        lines += ["", "Clusters with conflicting labels:", ""]
        lines += _table(["cluster", "size", "labels", "example"],
                        [[c["cluster_id"], c["cluster_size"], ", ".join(c["labels"]),
                          c.get("example")] for c in d["conflicting"]])
    return lines


def _splits_markdown(sp: Mapping[str, Any], leaks: Mapping[str, Any]) -> list[str]:
    counts: dict[str, dict[str, int]] = {}
    for c in sp["counts"]:
        counts.setdefault(str(c["label"]), {})[str(c["split"])] = int(c["rows"])
    names = [n for n in ("train", "validation", "test") if n in sp["fractions"]]
    lines = [
        "", "## Splits", "",
        "fractions " + ", ".join(f"{k} {_num(v)}" for k, v in sp["fractions"].items())
        + f"; seed {sp['seed']}, flagged rows: {sp['policy']} "
        f"({sp['flagged_rows']} flagged); leakage total {leaks.get('total', 0)}",
        "",
    ]
    lines += _table(["label", *names],
                    [[label, *(row.get(n, 0) for n in names)]
                     for label, row in sorted(counts.items())])
    if sp["excluded"]:
        lines += ["", "Excluded by policy:", ""]
        lines += _table(["policy", "rows", "example reason"],
                        [[e["policy"], e["rows"], e["example_reason"]] for e in sp["excluded"]])
    return lines


COEFFICIENTS = (  # agreement coefficients shown in reports: (metric key, name)
    ("krippendorff_alpha", "Krippendorff's α"),
    ("percent_agreement", "percent agreement"),
    ("fleiss_kappa", "Fleiss' κ"),
    ("fleiss_kappa_generalized", "Fleiss' κ (unequal counts)"),
    ("mean_cohen_kappa", "mean Cohen's κ (pairs)"),
    ("gwet_ac1", "Gwet's AC1"),
    ("gwet_ac2", "Gwet's AC2 (weighted)"),
)


def consensus_applied_text(ag: Mapping[str, Any]) -> str:
    """Whether the consensus became the training label (`agreement.apply`), with counts."""
    t = ag.get("training_label") or {}
    if not ag.get("consensus_applied_to_items") or not t.get("applied"):
        return "not applied to the items: `agreement.apply` is false"
    return (f"applied to the items: {t.get('changed', 0)} labels changed, "
            f"{t.get('confirmed', 0)} confirmed, {t.get('without_consensus', 0)} items kept "
            "their own label")


def _agreement_markdown(ag: Mapping[str, Any]) -> list[str]:
    m = ag["metrics"]
    lines = [
        "",
        "## Agreement",
        "",
        f"{m['n_labels']} labels on {m['n_items']} items by {m['n_annotators']} annotators "
        f"(level {md_cell(ag['level'])}, {m['n_items_multi_label']} items with two or more "
        f"labels, {m['n_categories']} categories). Training label: "
        f"{md_cell(ag['consensus_method'])} consensus (recorded in the `consensus` table; "
        + consensus_applied_text(ag) + ").",
        "",
    ]
    rows: list[list[object]] = []
    for key, name in COEFFICIENTS:
        value = m.get(key)
        ci = ""
        if key == "krippendorff_alpha" and m.get("krippendorff_alpha_ci_low") is not None:
            ci = (f"{_num(m['krippendorff_alpha_ci_low'])} – "
                  f"{_num(m['krippendorff_alpha_ci_high'])} "
                  f"({m['krippendorff_alpha_n_boot']} resamples)")
        rows.append([name, _num(value), ci])
    confidence = ag.get("settings", {}).get("bootstrap", {}).get("confidence", 0.95)
    lines += _table(["coefficient", "value", f"{confidence:.0%} bootstrap interval"], rows)
    lines += ["", "### Per class", ""]
    lines += _table(
        ["category", "labels", "share", "majority items", "specific agreement"],
        [[c["category"], c["n_labels"], _num(c["share"]), c["n_majority"],
          _num(c["specific_agreement"])] for c in ag["per_class"]],
    )
    # the pair counts are symmetric (a, b) = (b, a): list each unordered pair once
    confused = sorted(
        (c for c in ag["confusion"]
         if str(c["label_a"]) < str(c["label_b"]) and c["n_pairs"]),
        key=lambda c: -int(c["n_pairs"]),
    )[:10]
    if confused:
        lines += ["", "Most confused category pairs (label pairs on the same item):", ""]
        lines += _table(["label a", "label b", "pairs"],
                        [[c["label_a"], c["label_b"], c["n_pairs"]] for c in confused])
    lines += ["", "### Annotators", ""]
    with_gold = bool(m.get("n_gold_items_labelled"))
    gold_head = ["gold items", "gold accuracy"] if with_gold else []
    lines += _table(
        ["annotator", "labels", "consensus agreement", "mean Cohen's κ", *gold_head, "flagged"],
        [[a["annotator"], a["n_labels"], _num(a["consensus_agreement"]),
          _num(a["mean_cohen_kappa"]),
          *([a["n_gold"], _num(a["gold_accuracy"])] if with_gold else []),
          a["flag_reasons"] if a["flagged"] else ""] for a in ag["annotators"]],
    )
    lines += ["", "### Consensus", ""]
    lines += _table(
        ["method a", "method b", "items", "differ", "share differ"],
        [[c["method_a"], c["method_b"], c["n_items"], c["n_differ"], _num(c["share_differ"])]
         for c in ag["consensus_comparison"]],
    )
    gold_rows = [
        [name, _num(m.get(key))]
        for key, name in (("majority_gold_accuracy", "majority"),
                          ("dawid_skene_gold_accuracy", "Dawid-Skene"))
        if m.get(key) is not None
    ]
    if gold_rows:
        lines += ["", f"Accuracy on {m['n_gold_items_labelled']} gold items:", ""]
        lines += _table(["consensus", "gold accuracy"], gold_rows)
    if ag["notes"]:
        lines += ["", "Notes:", ""] + [f"- {md_cell(n, max_len=None)}" for n in ag["notes"]]
    return lines


def write_report(
    report: Mapping[str, Any],
    *,
    run: RunContext,
    history: pl.DataFrame | None = None,
    label_issues: pl.DataFrame | None = None,
) -> Path:
    """Write report.md, report.html and report.json, then point `latest` at this run.

    report.json is written last, through a temp file and a rename: it marks the run's
    report folder complete (a remote store's sync relies on it, `labelgate.remote`).
    Returns the folder. `history` (metrics_history rows) feeds the HTML trend plots.
    """
    # matplotlib is imported here, not at module level: the quick CLI commands skip it
    from labelgate.html_report import write_html

    out = run.report_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(render_markdown(report))
    write_html(report, path=out / "report.html", history=history, label_issues=label_issues)
    tmp = out / f".report.json-{os.getpid()}"
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, out / "report.json")
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
