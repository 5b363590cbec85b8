"""Convert CoNLL BIO files and Label Studio NER exports to the JSON Lines task spans reads.

``python -m labelgate.stages.spans.convert INPUT OUTPUT.jsonl [--annotations OUT.jsonl]``

- a CoNLL file (``.conll``, ``.txt``, ``.bio``; word first, tag last, blank lines between
  sentences, ``-DOCSTART-`` between documents): one row per sentence, ``{id, document,
  text, spans}``; the words joined by single spaces;
- a Label Studio JSON export (``.json``): one row per task, ``{id, document, text,
  spans}`` with the first annotation's spans; with ``--annotations``, every annotation as
  ``{item, annotator, spans}`` for span agreement.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import polars as pl

from labelgate.stages.spans.read import from_conll, from_label_studio


def _rows(docs: pl.DataFrame, spans: pl.DataFrame) -> list[dict[str, Any]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for d, s, e, lab, rec in spans.select("doc", "start", "end", "label",
                                          "recorded").iter_rows():
        by.setdefault(d, []).append({"start": s, "end": e, "label": lab, "text": rec})
    return [{"id": d, "document": g, "text": t, "spans": by.get(d, [])}
            for d, t, g in docs.select("doc", "text", "document").iter_rows()]


def convert(source: Path, out: Path, *, annotations: Path | None = None) -> int:
    """Write ``out`` (and ``annotations``) from ``source``; returns the rows written."""
    if source.suffix.lower() == ".json":
        tasks = json.loads(source.read_text())
        docs, spans = from_label_studio(tasks)
        if annotations is not None:
            with annotations.open("w") as f:
                for t in tasks:  # every annotation, those that marked no entity too
                    for ann in t.get("annotations") or []:
                        who = ann.get("completed_by")
                        if isinstance(who, dict):
                            who = who.get("email") or who.get("id")
                        _, mine = from_label_studio([{**t, "annotations": [ann]}])
                        f.write(json.dumps({"item": str(t.get("id")), "annotator": str(who),
                                            "spans": [{"start": s, "end": e, "label": lab}
                                                      for s, e, lab in mine.select(
                                                          "start", "end", "label").iter_rows()]
                                            }) + "\n")
        first = spans.group_by("doc").agg(pl.col("annotator").first())
        spans = spans.join(first, on=["doc", "annotator"], how="semi")
    else:
        docs, spans = from_conll(source.read_text(), name=source.stem)
    rows = _rows(docs, spans)
    with out.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--annotations", type=Path, default=None)
    args = ap.parse_args()
    print(f"{convert(args.source, args.out, annotations=args.annotations)} rows -> {args.out}")


if __name__ == "__main__":
    main()
