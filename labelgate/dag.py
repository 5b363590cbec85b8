"""The pipeline's stages, declared once.

`STAGES` is the DAG as an ordered list of `Stage` declarations, as Kedro's pipeline is a
list of nodes with named inputs and outputs. Everything that needs the stage list derives
it from here: the Prefect flow walks it (`flows/pipeline.py`), `labelgate check` prints
which stages a spec runs, the CLI's stage table and the report's section order follow it,
and the docs' list of stages is generated from it.

A stage names the task that does its work as ``"module:function"`` (imported only by the
flow, so this module stays free of Prefect), the values it takes from earlier stages, and
the values it gives. Adding a stage is one module under ``tasks/`` (plus its pure code
under ``labelgate/``) and one line here.

Values flow by name. A stage runs when its `when` holds for the spec, its required
inputs are present (an input named ``"x?"`` is optional: ``None`` when absent), and, with
``needs_rows``, the contract left at least one valid row; with ``needs_pass``, only when
the gate passed. A stage that gives a name an earlier stage gave replaces it (reviewer
corrections give a new ``contract``), as a later Kedro node would read a new dataset
version.

Two names are provided by the flow rather than a stage: ``abandoned`` (earlier runs that
`prepare_run` found left running) and ``results`` (every stage result so far, in
declaration order and in brief, for the stages that gather metrics and sections).

Memory follows the declaration too (`releases`): once no later stage of the run reads a
value in full, the flow keeps only its brief (`labelgate.results.brief`: counts, metrics,
sections, without the per-row frames), and once no later stage reads it at all, drops it.
A stage that needs only a value's brief says so in ``in_brief``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labelgate.spec import Spec

FLOW_INPUTS = frozenset({"abandoned", "results"})
# values the flow reads itself (the contract's row counts, the verdict, the report): kept
# to the end, in brief
FLOW_READS = frozenset({"contract", "verdict", "report"})


def always(spec: Spec) -> bool:
    """The `when` of a stage that every run executes."""
    return True


@dataclass(frozen=True)
class Stage:
    """One node of the DAG.

    Parameters
    ----------
    name
        The stage's name, as the Prefect task run and the CLI's stage table show it.
    task
        ``"module:function"`` of the task that runs it; called with ``(spec, store,
        **inputs)`` and returning one value per output (a tuple when there are several).
    inputs
        Names of values earlier stages gave; a trailing ``?`` makes one optional.
    outputs
        Names of the values it gives.
    when
        Whether a spec runs the stage at all.
    doc
        One line on what it does, for ``labelgate check``, the CLI and the docs.
    needs
        What a spec must say for the stage to run (for messages), e.g.
        ``"a dedup section"``.
    needs_rows, needs_pass
        Skip the stage when the contract left no valid row / when the gate failed.
    metric_prefix
        The prefix of the gate metrics it computes (``"dedup"`` for ``dedup.*``), so
        ``labelgate check`` can warn about a gate check whose stage will not run.
    summary
        What the stage did, in a few words, from report.json (the CLI's stage table).
    in_brief
        Inputs it reads only in brief (`labelgate.results.brief`: counts, metrics and
        sections, not the per-row frames), so the flow can let their frames go earlier.
    brief_for
        More inputs it reads only in brief, for a given spec (the splits read the
        contract's valid rows in brief when publish reads their texts from the lake).
    """

    name: str
    task: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    when: Callable[[Spec], bool] = always
    doc: str = ""
    needs: str = ""
    needs_rows: bool = False
    needs_pass: bool = False
    metric_prefix: str | None = None
    summary: Callable[[Mapping[str, Any]], str | None] | None = None
    in_brief: tuple[str, ...] = ()
    brief_for: Callable[[Spec], tuple[str, ...]] | None = None

    def load(self) -> Callable[..., Any]:
        """The task function named by `task`."""
        module, _, attr = self.task.partition(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(module), attr)
        return fn

    def required(self) -> tuple[str, ...]:
        return tuple(n for n in self.inputs if not n.endswith("?"))

    def arguments(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The keyword arguments for the task from the values given so far, or None when
        a required input is missing (the stage is skipped)."""
        args: dict[str, Any] = {}
        for name in self.inputs:
            key = name.rstrip("?")
            value = values.get(key)
            if value is None and not name.endswith("?"):
                return None
            args[key] = value
        return args


def _instruction(s: Spec) -> bool:
    return s.is_instruction


def _preference(s: Spec) -> bool:
    return s.is_preference


def _not_preference(s: Spec) -> bool:
    return not s.is_preference


def _annotations(s: Spec) -> bool:
    return (s.sources.annotations is not None and not s.is_multilabel and not s.is_spans
            and not s.is_dimensions)


def _dimensions(s: Spec) -> bool:
    return s.is_dimensions


def _dimension_splits(s: Spec) -> bool:
    return s.is_dimensions and s.splits is not None


def _publish_dimensions(s: Spec) -> bool:
    return s.is_dimensions and s.publish is not None


def _spans(s: Spec) -> bool:
    return s.is_spans


def _publish_spans(s: Spec) -> bool:
    return s.is_spans and s.publish is not None


def _multilabel(s: Spec) -> bool:
    return s.is_multilabel


def _multilabel_splits(s: Spec) -> bool:
    return s.is_multilabel and s.splits is not None


def _publish_multilabel(s: Spec) -> bool:
    return s.is_multilabel and s.publish is not None


def _consensus(s: Spec) -> bool:
    return _annotations(s) and s.agreement_settings().apply


def _label_issues(s: Spec) -> bool:
    return s.label_issues is not None and s.columns.label is not None


def _dedup(s: Spec) -> bool:
    return s.dedup is not None


def _splits(s: Spec) -> bool:
    return s.splits is not None and not s.is_multilabel and not s.is_dimensions


def lean_splits(s: Spec) -> bool:
    """Whether the splits keep lean kept rows and read the contract's valid rows in brief
    (`labelgate.results.brief_columns`: id, label, group, the publish filter's columns):
    every task whose publish reads the texts and features back from the lake's Parquet;
    preference pairs and entity spans publish from the kept rows themselves."""
    return not (s.is_preference or s.is_spans)


def _splits_brief(s: Spec) -> tuple[str, ...]:
    return ("contract",) if lean_splits(s) else ()


def _publish(s: Spec) -> bool:
    return (s.publish is not None and not s.is_preference and not s.is_multilabel
            and not s.is_spans and not s.is_dimensions)


def _publish_preference(s: Spec) -> bool:
    return s.publish is not None and s.is_preference


def _preference_summary(report: Mapping[str, Any]) -> str | None:
    p = report.get("preference")
    if not isinstance(p, Mapping):
        return None
    swapped = p.get("swaps", {}).get("flagged")
    return f"{p['pairs']:,} pairs" + (f", {swapped:,} swapped?" if swapped else "")


def _multilabel_summary(report: Mapping[str, Any]) -> str | None:
    m = report.get("multilabel")
    if not isinstance(m, Mapping):
        return None
    issues = m.get("issues")
    return f"{len(m['tags'])} tags" + (f", {issues['flagged']:,} flagged" if issues else "")


def _spans_summary(report: Mapping[str, Any]) -> str | None:
    sp = report.get("spans")
    if not isinstance(sp, Mapping):
        return None
    issues = sp.get("issues")
    return f"{sp['spans']:,} spans" + (
        f", {issues['flagged_tokens']:,} tokens flagged" if issues else "")


def _dimensions_summary(report: Mapping[str, Any]) -> str | None:
    d = report.get("dimensions")
    if not isinstance(d, Mapping):
        return None
    return f"{len(d['dimensions'])} dimensions, {d['flagged_rows']:,} rows flagged"


def _count(section: str, key: str, what: str) -> Callable[[Mapping[str, Any]], str | None]:
    """A summary reading ``report[section][key]`` as a count."""

    def summary(report: Mapping[str, Any]) -> str | None:
        part = report.get(section)
        return f"{int(part[key]):,} {what}" if isinstance(part, Mapping) else None

    return summary


def _label_issues_summary(report: Mapping[str, Any]) -> str | None:
    li = report.get("label_issues")
    if not isinstance(li, Mapping):
        return None
    return f"{li['count']:,} flagged" + (" (reused)" if "reused_from" in li else "")


def _agreement_summary(report: Mapping[str, Any]) -> str | None:
    ag = report.get("agreement")
    if not isinstance(ag, Mapping):
        return None
    return f"{ag.get('metrics', {}).get('n_labels', 0):,} labels"


def _published_summary(report: Mapping[str, Any]) -> str | None:
    p = report.get("published")
    if not isinstance(p, Mapping):
        return None
    return f"v{p['version']}: {p['rows']:,}" + (" (unchanged)" if p.get("unchanged") else "")


STAGES: list[Stage] = [
    Stage("ingest", "tasks.ingest:ingest", (), ("batches",),
          doc="read each input file into a content-addressed Parquet lake batch",
          summary=_count("rows", "input", "in")),
    Stage("canonicalize", "tasks.ingest:canonicalize", ("batches",), ("canonical",),
          when=_instruction, needs="task: instruction", metric_prefix="sft",
          doc="instruction data: each batch's rows in the canonical frame"),
    Stage("enforce-contract", "tasks.contract:enforce_contract", ("batches", "canonical?"),
          ("contract", "sft"), when=_not_preference,
          doc="the pandera contract; bad rows quarantined with reasons",
          summary=_count("rows", "quarantined", "quarantined")),
    Stage("read-pairs", "tasks.preference:read_pairs", ("batches",),
          ("contract", "pair_checks"), when=_preference, needs="task: preference",
          doc="preference data: judgments read and checked; bad pairs quarantined with reasons",
          summary=_count("rows", "quarantined", "quarantined")),
    Stage("check-tags", "tasks.multilabel:check_tags", ("contract",), ("contract", "tag_checks"),
          when=_multilabel, needs="task: multilabel",
          doc="multi-label data: the tags read as lists; unknown tags, too few or too many "
          "quarantined with reasons"),
    Stage("check-spans", "tasks.spans:check_spans", ("contract",), ("contract", "span_checks"),
          when=_spans, needs="task: spans",
          doc="entity spans: offsets, recorded text, types and overlaps checked; rows with "
          "a bad span quarantined with reasons"),
    Stage("corrections", "tasks.contract:corrections", ("contract",), ("contract", "review"),
          doc="reviewer corrections (labelgate review import) applied to the labels",
          metric_prefix="review", summary=_count("review", "n_changed", "relabeled")),
    Stage("agreement", "tasks.agreement:agreement", ("contract",), ("agreement",),
          when=_annotations, needs="set sources.annotations", needs_rows=True,
          metric_prefix="agreement",
          doc="inter-annotator agreement, annotator quality and consensus",
          summary=_agreement_summary),
    Stage("consensus-label", "tasks.agreement:consensus_label", ("contract", "agreement"),
          ("contract", "agreement"), when=_consensus, needs="agreement.apply: true",
          doc="the consensus label becomes the items' training label"),
    Stage("preference", "tasks.preference:preference", ("contract", "pair_checks"),
          ("contract", "preference"), when=_preference, needs="task: preference",
          needs_rows=True, metric_prefix="preference",
          doc="pairs, agreement, position and length bias, contradictions, cycles, "
          "Bradley-Terry scores, probably swapped pairs", summary=_preference_summary),
    Stage("multilabel", "tasks.multilabel:multilabel", ("contract",), ("multilabel",),
          when=_multilabel, needs="task: multilabel", needs_rows=True,
          metric_prefix="multilabel", summary=_multilabel_summary,
          doc="tag counts, probable tag errors (out-of-fold one-vs-rest model + cleanlab), "
          "agreement (Krippendorff's alpha with MASI, per-tag kappa)"),
    Stage("spans", "tasks.spans:spans", ("contract",), ("spans",), when=_spans,
          needs="task: spans", needs_rows=True, metric_prefix="spans",
          summary=_spans_summary,
          doc="entity types, probable span errors (out-of-fold token model + cleanlab), "
          "span agreement (exact/overlap F1 per type, token kappa)"),
    Stage("dimensions", "tasks.dimensions:dimensions", ("contract",), ("dimensions",),
          when=_dimensions, needs="task: dimensions", needs_rows=True,
          metric_prefix="dimensions", summary=_dimensions_summary,
          doc="per label dimension: values, probable label errors (nominal/ordinal: text "
          "model + cleanlab; interval: cleanlab regression), Krippendorff's alpha at its level"),
    Stage("store", "tasks.contract:store_rows", ("contract", "sft?"), ("stored",),
          doc="valid rows to Parquet, the quarantine to DuckDB"),
    Stage("label-issues", "tasks.label_issues:label_issues", ("contract", "agreement?"),
          ("label_issues",), when=_label_issues, needs="add a label_issues section",
          needs_rows=True, metric_prefix="label_issues",
          doc="cleanlab's probable label errors on out-of-fold probabilities",
          summary=_label_issues_summary),
    Stage("dedup", "tasks.dedup:dedup", ("contract",), ("dedup",), when=_dedup,
          needs="add a dedup section", needs_rows=True, metric_prefix="dedup",
          doc="exact and near-duplicate clusters",
          summary=_count("duplicates", "count", "duplicates")),
    Stage("splits", "tasks.splits:splits", ("contract", "label_issues?", "dedup?"),
          ("splits",), when=_splits, needs="add a splits section", needs_rows=True,
          metric_prefix="splits", in_brief=("label_issues",), brief_for=_splits_brief,
          doc="sticky, stratified, grouped splits; flagged-row policy; leakage",
          summary=_count("rows", "excluded", "excluded")),
    Stage("multilabel-splits", "tasks.multilabel:multilabel_splits",
          ("contract", "multilabel", "dedup?"), ("splits",), when=_multilabel_splits,
          needs="add a splits section", needs_rows=True, metric_prefix="splits",
          doc="multi-label data: sticky, grouped splits stratified over the tags (iterative "
          "stratification); flagged-row policy; leakage",
          summary=_count("rows", "excluded", "excluded")),
    Stage("dimension-splits", "tasks.dimensions:dimension_splits",
          ("contract", "dimensions", "dedup?"), ("splits",), when=_dimension_splits,
          needs="add a splits section", needs_rows=True, metric_prefix="splits",
          doc="label dimensions: sticky, grouped splits; a row flagged on a dimension "
          "follows that dimension's policy; leakage",
          summary=_count("rows", "excluded", "excluded")),
    Stage("metrics", "tasks.gate:metrics", ("contract", "batches", "results"),
          ("metrics", "metric_details"), in_brief=("contract",),
          doc="the run's metrics for the gate, with the comparisons to earlier runs"),
    Stage("gate", "tasks.gate:gate", ("metrics", "metric_details?"), ("verdict",),
          doc="the metrics against the spec's thresholds"),
    Stage("publish", "tasks.publish:publish", ("splits", "verdict", "metrics", "batches"),
          ("published",), when=_publish, needs="add a publish section", needs_pass=True,
          doc="the clean splits as a new published version (only when the gate passed)",
          summary=_published_summary),
    Stage("publish-preferences", "tasks.preference:publish_preferences",
          ("splits", "verdict", "metrics", "batches"), ("published",),
          when=_publish_preference, needs="add a publish section", needs_pass=True,
          doc="preference pairs and TRL files as a new published version (gate passed)",
          summary=_published_summary),
    Stage("publish-multilabel", "tasks.multilabel:publish_multilabel",
          ("splits", "verdict", "metrics", "batches"), ("published",),
          when=_publish_multilabel, needs="add a publish section", needs_pass=True,
          doc="multi-label splits (tags as a list column) as a new published version",
          summary=_published_summary),
    Stage("publish-spans", "tasks.spans:publish_spans",
          ("splits", "verdict", "metrics", "batches", "spans"), ("published",),
          when=_publish_spans, needs="add a publish section", needs_pass=True,
          doc="entity spans as spaCy JSON Lines and Hugging Face token columns, a new "
          "published version", summary=_published_summary),
    Stage("publish-dimensions", "tasks.dimensions:publish_dimensions",
          ("splits", "verdict", "metrics", "batches"), ("published",),
          when=_publish_dimensions, needs="add a publish section", needs_pass=True,
          doc="label dimensions (one flag column each) as a new published version",
          summary=_published_summary),
    Stage("report", "tasks.report:report",
          ("batches", "contract", "metrics", "verdict", "stored", "results", "abandoned"),
          ("report",), in_brief=("contract",),
          doc="report.json, report.md, report.html and Prefect artifacts",
          summary=_count("rows", "valid", "valid")),
]


def stages_of(spec: Spec, stages: Sequence[Stage] | None = None) -> dict[str, bool]:
    """Which declared stages a run of `spec` executes (by `when`), in order."""
    return {s.name: s.when(spec) for s in (STAGES if stages is None else stages)}


def stage_of_metric(metric: str, stages: Sequence[Stage] | None = None, *,
                    spec: Spec | None = None) -> Stage | None:
    """The stage whose metrics start with `metric`'s prefix (``dedup.count`` → dedup).
    With ``spec``, a stage that `spec` runs comes first (the splits metrics come from
    ``splits`` or, for task multilabel, ``multilabel-splits``)."""
    prefix = metric.split(".", 1)[0] if "." in metric else None
    found = [s for s in (STAGES if stages is None else stages)
             if prefix is not None and s.metric_prefix == prefix]
    running = [s for s in found if spec is not None and s.when(spec)]
    pick = running or found
    return pick[0] if pick else None


@dataclass(frozen=True)
class Release:
    """What the flow lets go of after a stage: the values no later stage reads in full
    (kept in brief) and those no later stage reads at all (dropped)."""

    to_brief: frozenset[str]
    to_drop: frozenset[str]


def releases(spec: Spec, stages: Sequence[Stage] | None = None) -> dict[str, Release]:
    """For each stage `spec` runs (by `when`), by name: the values to keep only in brief,
    and those to drop, once it has run (or been skipped). The last reader of a value is
    the last stage that `spec` runs and names it as an input; ``in_brief`` (and
    ``brief_for``) inputs are reads in brief; the values the flow reads itself
    (`FLOW_READS`) are never dropped. A value given by a stage and read by none is released
    right after that stage."""
    running = [s for s in (STAGES if stages is None else stages) if s.when(spec)]
    last_full: dict[str, int] = {}
    last_any: dict[str, int] = {n: len(running) for n in FLOW_READS}
    for i, s in enumerate(running):
        for name in (*s.outputs, *(n.rstrip("?") for n in s.inputs)):
            last_any[name] = max(last_any.get(name, i), i)
        in_brief = {*s.in_brief, *(s.brief_for(spec) if s.brief_for is not None else ())}
        for name in (n.rstrip("?") for n in s.inputs):
            if name not in in_brief:
                last_full[name] = i
        for name in s.outputs:  # given: full at least until here
            last_full[name] = max(last_full.get(name, i), i)
    given = {"abandoned", *(n for s in running for n in s.outputs)}
    return {
        s.name: Release(
            to_brief=frozenset(n for n, j in last_full.items() if j == i and n in given),
            to_drop=frozenset(n for n, j in last_any.items() if j == i and n in given),
        )
        for i, s in enumerate(running)
    }


def validate(stages: Sequence[Stage]) -> None:
    """Raise `ValueError` when a stage reads a value no earlier stage gives."""
    given = set(FLOW_INPUTS)
    seen: set[str] = set()
    for s in stages:
        if s.name in seen:
            raise ValueError(f"stage {s.name!r} is declared twice")
        seen.add(s.name)
        missing = [n for n in s.inputs if n.rstrip("?") not in given]
        if missing:
            raise ValueError(
                f"stage {s.name!r} reads {missing}, which no earlier stage gives; "
                f"given so far: {sorted(given)}")
        given.update(s.outputs)
