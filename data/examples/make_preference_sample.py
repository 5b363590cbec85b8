"""Build the preference example from the bundled chitchat sample (issue 24): real human
text, simulated annotators, defects planted on purpose.

    .venv/bin/python data/examples/make_preference_sample.py

No package ships real human preference judgments that installs offline (the package lists
were searched), so the pairs are built from real human text and the judgments are
simulated; the README in data/examples/preference says so and lists what was planted.

Pairs: for each of the 2,000 context -> response pairs of `chitchat/items.jsonl` (BYU PCC
Chit-Chat Challenge, MIT) the prompt is the context (a chat list of {role, content}), the
**good** response is the human reply that followed, the **other** response is the human
reply of another conversation (a seeded derangement). With seed 24, 800 pairs are taken.

Judgments (judgments.jsonl, one row per judgment): each pair is judged by three of five
annotators; the display order is random per judgment. Annotators `ann-a`, `ann-b`,
`ann-c` choose the good reply with probability 0.85, the other with 0.10 and tie with
0.05; `ann-pos` (position bias) picks the response shown first 80% of the time, else
judges like the others; `ann-len` (length bias) picks the longer response 80% of the time.

Planted defects (their row ids are in planted.json):
- **swapped**: 6% of the pairs are recorded reversed by every annotator (an export that
  mixed up the columns);
- **identical**: 8 pairs whose second response is the first (exact), 6 with case and
  whitespace changed (normalised), 6 with one character changed (near-identical);
- **contradictions**: up to 10 pairs (8 with seed 24) judged a second time by the same
  annotator, responses in the other order, deciding the other way;
- **bad values**: 3 judgments with preference "both", 2 with an empty response.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).parent
SOURCE = HERE / "chitchat" / "items.jsonl"
OUT = HERE / "preference"
PAIRS = 800
SEED = 24
FAIR = ("ann-a", "ann-b", "ann-c")
ANNOTATORS = (*FAIR, "ann-pos", "ann-len")
SWAP_SHARE = 0.06


def _pairs(rng: random.Random) -> list[dict[str, Any]]:
    rows = pl.read_ndjson(SOURCE).select("id", "messages").to_dicts()
    rng.shuffle(rows)
    rows = rows[:PAIRS]
    replies = [r["messages"][-1]["content"] for r in rows]
    shift = [(i + 1 + rng.randrange(len(rows) - 1)) % len(rows) for i in range(len(rows))]
    return [{"pair": f"pp-{i:04d}", "source": r["id"], "prompt": r["messages"][:-1],
             "good": replies[i], "other": replies[shift[i]]} for i, r in enumerate(rows)]


def _judge(who: str, first: str, second: str, good: str, rng: random.Random) -> str:
    """a | b | tie by annotator `who` for responses shown as (first, second)."""
    u = rng.random()
    if who == "ann-pos" and u < 0.8:
        return "a"
    if who == "ann-len" and u < 0.8:
        return "a" if len(first) >= len(second) else "b"
    v = rng.random()
    if v < 0.05:
        return "tie"
    picks_good = v < 0.90
    return "a" if (first == good) == picks_good else "b"


def _judgments(pairs: list[dict[str, Any]], rng: random.Random
               ) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    rows: list[dict[str, Any]] = []
    planted: dict[str, list[str]] = {"swapped_pairs": []}
    for p in pairs:
        swapped = rng.random() < SWAP_SHARE
        if swapped:
            planted["swapped_pairs"].append(p["pair"])
        for who in rng.sample(ANNOTATORS, 3):
            first, second = (p["good"], p["other"]) if rng.random() < 0.5 else (
                p["other"], p["good"])
            pref = _judge(who, first, second, p["good"], rng)
            if swapped and pref != "tie":
                pref = "b" if pref == "a" else "a"
            rows.append({"id": f"{p['pair']}-{who}", "pair": p["pair"], "source": p["source"],
                         "prompt": p["prompt"], "response_a": first, "response_b": second,
                         "preference": pref, "annotator": who})
    return rows, planted


def _plant(rows: list[dict[str, Any]], pairs: list[dict[str, Any]], rng: random.Random,
           planted: dict[str, list[str]]) -> None:
    """Identical pairs, contradictions and bad values (module docstring)."""
    spare = [p for p in pairs if p["pair"] not in set(planted["swapped_pairs"])]
    picks = rng.sample(spare, 20 + 10)
    kinds = [("exact", lambda t: t)] * 8 + [("normalised", lambda t: f"  {t.upper()} ")] * 6 \
        + [("near", lambda t: t[:-1] + ("!" if t[-1:] != "!" else "?"))] * 6
    for (kind, change), p in zip(kinds, picks[:20], strict=True):
        if kind == "near" and len(p["good"]) < 40:
            p = next(q for q in spare if len(q["good"]) >= 60 and q not in picks)
            picks.append(p)
        rid = f"{p['pair']}-identical-{kind}"
        rows.append({"id": rid, "pair": p["pair"], "source": p["source"], "prompt": p["prompt"],
                     "response_a": p["good"], "response_b": change(p["good"]),
                     "preference": "a", "annotator": "ann-a"})
        planted.setdefault(f"identical_{kind}", []).append(rid)
    by_pair = {r["pair"]: r for r in rows if r["annotator"] in FAIR and r["preference"] != "tie"}
    for p in picks[20:30]:
        first = by_pair.get(p["pair"])
        if first is None:
            continue
        rid = f"{first['id']}-again"
        rows.append({**first, "id": rid, "response_a": first["response_b"],
                     "response_b": first["response_a"], "preference": first["preference"]})
        planted.setdefault("contradictions", []).append(rid)
    for i, r in enumerate(rng.sample(rows[:2000], 5)):
        if i < 3:
            r["preference"] = "both"
            planted.setdefault("preference_value", []).append(r["id"])
        else:
            r["response_b"] = ""
            planted.setdefault("empty_response", []).append(r["id"])


def main() -> None:
    rng = random.Random(SEED)
    pairs = _pairs(rng)
    rows, planted = _judgments(pairs, rng)
    _plant(rows, pairs, rng, planted)
    rows.sort(key=lambda r: r["id"])
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "judgments.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (OUT / "planted.json").write_text(json.dumps(planted, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(rows)} judgments of {len(pairs)} pairs to {OUT / 'judgments.jsonl'}; "
          + ", ".join(f"{k} {len(v)}" for k, v in sorted(planted.items())))


if __name__ == "__main__":
    main()
