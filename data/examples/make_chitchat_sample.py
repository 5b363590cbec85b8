"""Rebuild the bundled chitchat instruction sample from the `chitchat-dataset` wheel.

    .venv/bin/pip install --no-deps chitchat-dataset==0.9.0
    .venv/bin/python data/examples/make_chitchat_sample.py

`chitchat_dataset/dataset.json` (MIT, BYU PCC lab's Chit-Chat Challenge, 2018) maps a
conversation UUID to `{prompt, ratings, start, messages}`: `messages` is a list of turns,
each a list of utterances (text, timestamp, sender) by one participant; `prompt` is the
conversation starter the pair was given; `ratings` ({witty, upbeat, interesting}, 1-10)
is ONE set of ratings per conversation. We read the JSON file only (located through
importlib.metadata; the package's own loader is not imported).

Eligible conversations have ratings, a starter prompt and two participants. In dataset
order they are numbered `cc-NNNN` (position in dataset.json, 1-based). With seed 13 we
shuffle them and take up to two response turns from each until 2,000 pairs:

- the response turn k (k >= 1) becomes the assistant message; its sender is "assistant";
- the context is up to the 5 turns before it, trimmed to an odd count so that it starts
  with the other participant ("user") and roles alternate; a turn's utterances are
  joined with newlines;
- labels: `witty`, `upbeat`, `interesting` (the conversation's ratings, copied to each of
  its pairs), `quality` = the mean of the three on 1-10 mapped to 1-5
  (floor(mean / 2 + 0.5), clipped to 1..5), and `topic` = the starter prompt (35 in
  the source, 34 in the sample).
  These are conversation-level labels, not reviews of the response.
- `conversation_id` (the UUID) is the group column: all pairs of one conversation stay in
  one split. `turn` is k. Sender ids and timestamps are not copied.

Nothing is edited or injected: problematic rows in the output occur in the source.
"""

from __future__ import annotations

import importlib.metadata
import json
import random
from pathlib import Path
from typing import Any

import polars as pl

DATASET = "chitchat_dataset/dataset.json"
OUT = Path(__file__).parent / "chitchat"
PAIRS = 2000
PER_CONVERSATION = 2
CONTEXT_TURNS = 5
SEED = 13
RATINGS = ("witty", "upbeat", "interesting")


def dataset_path() -> Path:
    files = importlib.metadata.files("chitchat-dataset") or []
    return Path(str(next(f.locate() for f in files if str(f).endswith(DATASET))))


def quality(ratings: dict[str, int]) -> int:
    mean = sum(ratings[k] for k in RATINGS) / len(RATINGS)
    return min(5, max(1, int(mean / 2 + 0.5)))


def turn_text(turn: list[dict[str, Any]]) -> str:
    return "\n".join(u["text"] for u in turn)


def pair(number: int, uuid: str, convo: dict[str, Any], k: int) -> dict[str, Any]:
    turns = convo["messages"]
    responder = turns[k][0]["sender"]
    start = max(0, k - CONTEXT_TURNS)
    if turns[start][0]["sender"] == responder:  # start on the other participant's turn
        start += 1
    messages = [
        {
            "role": "assistant" if t[0]["sender"] == responder else "user",
            "content": turn_text(t),
        }
        for t in turns[start : k + 1]
    ]
    ratings = convo["ratings"]
    return {
        "id": f"cc-{number:04d}-t{k:02d}",
        "conversation_id": uuid,
        "turn": k,
        "messages": messages,
        "topic": convo["prompt"],
        **{k_: int(ratings[k_]) for k_ in RATINGS},
        "quality": quality(ratings),
    }


def eligible(convo: dict[str, Any]) -> bool:
    senders = {u["sender"] for t in convo["messages"] for u in t}
    return (
        bool(convo.get("ratings"))
        and bool(convo.get("prompt"))
        and len(senders) == 2
        and len(convo["messages"]) >= 2
    )


def build() -> tuple[list[dict[str, Any]], int, int]:
    data: dict[str, Any] = json.loads(dataset_path().read_text(encoding="utf-8"))
    numbered = [(i, uuid, c) for i, (uuid, c) in enumerate(data.items(), start=1) if eligible(c)]
    rng = random.Random(SEED)
    rng.shuffle(numbered)
    rows: list[dict[str, Any]] = []
    for number, uuid, convo in numbered:
        candidates = list(range(1, len(convo["messages"])))
        for k in sorted(rng.sample(candidates, min(PER_CONVERSATION, len(candidates)))):
            rows.append(pair(number, uuid, convo, k))
        if len(rows) >= PAIRS:
            break
    return sorted(rows[:PAIRS], key=lambda r: r["id"]), len(data), len(numbered)


def main() -> None:
    rows, total, n_eligible = build()
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "items.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    df = pl.DataFrame(rows)
    print(
        f"wrote {len(rows)} pairs from {df['conversation_id'].n_unique()} conversations to "
        f"{OUT / 'items.jsonl'} ({n_eligible} of {total} conversations eligible)"
    )
    print(df.group_by("quality").len().sort("quality"))


if __name__ == "__main__":
    main()
