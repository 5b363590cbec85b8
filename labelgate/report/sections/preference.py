"""The ``preference`` section (task preference): checks, agreement, annotators' position
and length bias, contradictions, cycles, probable swapped pairs; plots of agreement by
annotator and of the chosen-minus-rejected length difference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from labelgate.report.view import (
    Part,
    Plot,
    Section,
    _as_rows,
    _float,
    _mapping,
    _plot,
    _records,
    excerpt,
    fmt_num,
    fmt_pct,
)


def _plots(sec: Mapping[str, Any]) -> list[Plot]:
    figs: list[Plot] = []
    ann = [a for a in _as_rows(sec.get("annotators")) if _float(a.get("loo_agreement"))
           is not None]
    if ann:
        figs.append(_plot(
            "bar_chart", [a.get("annotator") for a in ann],
            [_float(a.get("loo_agreement")) for a in ann],
            title="Agreement with the other annotators, by annotator",
            xlabel="share of judgments agreeing with the leave-one-out consensus",
            xlim=(0.0, 1.1), percent=True, salt="pref-ann"))
    hist = _mapping(_mapping(sec.get("length_bias") or {}) and
                    (sec.get("length_bias") or {}).get("token_difference"))
    edges = [float(e) for e in (hist or {}).get("edges") or []]
    counts = [int(c) for c in (hist or {}).get("counts") or []]
    if edges and counts and sum(counts):
        centres = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
        figs.append(_plot(
            "histogram", np.repeat(centres, counts),
            title="Length difference, chosen minus rejected (decided judgments)",
            xlabel=f"{(sec.get('length_bias') or {}).get('tokens') or 'whitespace tokens'} "
                   "(clipped to the 1st-99th percentile span)",
            bins=len(counts), value_range=(edges[0], edges[-1]), salt="pref-len"))
    return figs


def _facts(sec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value with its note, css class) for the facts part."""
    m: Mapping[str, Any] = sec.get("metrics") or {}
    ag: Mapping[str, Any] = sec.get("agreement") or {}
    lb: Mapping[str, Any] = sec.get("length_bias") or {}
    rows = [
        ("percent agreement", fmt_pct(m.get("percent_agreement"), 1),
         f"over {fmt_num(ag.get('pairs_multi'))} pairs judged twice or more"),
        ("Krippendorff's α (a, b, tie)", fmt_num(m.get("krippendorff_alpha")), ""),
        (f"chosen is longer ({lb.get('tokens') or 'whitespace tokens'})",
         fmt_pct(lb.get("longer_share_tokens"), 1),
         f"characters: {fmt_pct(lb.get('longer_share_chars'), 1)}; equal tokens: "
         f"{fmt_pct(lb.get('equal_share_tokens'), 1)}"),
        ("largest position bias", fmt_pct(m.get("max_position_bias"), 1),
         str(sec.get("worst_position_bias_annotator") or "")),
        ("identical pairs quarantined", fmt_pct(m.get("identical_pair_rate"), 2),
         f"{fmt_num(sec.get('identical_rows'))} judgments"),
        ("pairs decided both ways", fmt_pct(m.get("contradiction_rate"), 2),
         "by one annotator, or by rows without one"),
        ("prompts with a preference cycle", fmt_pct(m.get("cycle_rate"), 2), ""),
        ("tied pairs", fmt_pct(m.get("tie_rate"), 1), ""),
        ("probably swapped pairs", fmt_pct(m.get("swapped_rate"), 2),
         _swap_note(_mapping(sec.get("swaps")) or {})),
    ]
    return [(label, f"{value} ({note})" if note else value, "") for label, value, note in rows]


def _swap_note(sw: Mapping[str, Any]) -> str:
    if not sw.get("fitted"):
        return f"not fitted: {sw.get('skipped', '?')}"
    return (f"{sw.get('folds')} folds grouped by prompt, seed {sw.get('seed')}, cleanlab "
            f"{sw.get('filter_by')}")


def preference_view(sec: Mapping[str, Any]) -> Section:
    """report.json's ``preference`` section as a report section."""
    out = Section("preference", "Preference data")
    checks = sec.get("quarantined_by_check") or {}
    shown = ", ".join(f"{k} {fmt_num(v)}" for k, v in checks.items()) or "none"
    policy = sec.get("policy") or {}
    out.add(Part("text", text=(
        f"{fmt_num(sec.get('judgments'))} valid judgments ({sec.get('shape')}) of "
        f"{fmt_num(sec.get('pairs'))} pairs, from {fmt_num(sec.get('rows_input'))} read; "
        f"quarantined by check: {shown}. Publish policy: ties {policy.get('ties')}, "
        f"flagged pairs {policy.get('flagged')}.")))
    ls = _mapping(sec.get("label_studio"))
    if ls:
        out.add(Part("text", text=(
            f"Label Studio export: {fmt_num(ls.get('tasks'))} tasks, "
            f"{fmt_num(ls.get('annotations'))} annotations read as judgments; not judgments "
            f"(so not counted as input): {fmt_num(ls.get('cancelled'))} cancelled "
            f"annotations, {fmt_num(_without(ls))} without a pairwise or ranker result, "
            f"{fmt_num(ls.get('tasks_without_judgment'))} tasks without a judgment.")))
    out.add(Part("facts", facts=_facts(sec)))
    figs = _plots(sec)
    if figs:
        out.add(Part("plots", plots=figs))
    out.table(_records(
        sec.get("annotators"),
        ["annotator", "judgments", "LOO agreement", "first shown picked", "p (binomial)",
         "chosen longer (tokens)"],
        lambda a: [a.get("annotator"), a.get("judgments"), fmt_pct(a.get("loo_agreement"), 1),
                   fmt_pct(a.get("first_share"), 1), fmt_num(a.get("position_p_value")),
                   fmt_pct(a.get("longer_share_tokens"), 1)],
        caption="Annotators", numeric=range(1, 6), collapsed=False))
    sw = _mapping(sec.get("swaps")) or {}
    out.table(_records(
        sw.get("examples"), ["pair", "prompt", "chosen (recorded)", "rejected", "quality"],
        lambda r: [r.get("pair_id"), excerpt(r.get("prompt")), excerpt(r.get("chosen")),
                   excerpt(r.get("rejected")), fmt_num(r.get("label_quality"))],
        caption="Probably swapped pairs (lowest quality of the recorded preference first)",
        numeric=[4], limit=20, collapsed=True))
    cyc = _mapping(sec.get("cycles")) or {}
    out.table(_records(
        cyc.get("examples"), ["prompt", "responses in the cycle", "examples"],
        lambda r: [excerpt(r.get("prompt_key")), r.get("size"),
                   " | ".join(excerpt(t, 60) for t in r.get("responses") or [])],
        caption="Intransitive cycles", numeric=[1], limit=10, collapsed=True))
    return out


def _without(counts: Mapping[str, Any]) -> int:
    return int(counts.get("without_pairwise", 0)) + int(counts.get("without_ranker", 0))
