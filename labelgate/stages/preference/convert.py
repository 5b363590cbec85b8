"""Label Studio preference exports to JSON Lines that `task: preference` reads.

    python -m labelgate.stages.preference.convert pairwise export.json judgments.jsonl
    python -m labelgate.stages.preference.convert ranker export.json rankings.jsonl \\
        --prompt-field prompt --items-field items --text-field body

A run reads an export itself (``sources.items.format: label-studio``, the data fields in
``preference.columns``); this writes the same `read_label_studio_pairwise` frame (shape
judgments) or `read_label_studio_ranker` frame (shape rankings) as JSON Lines, to look at
or to edit first. Errors name the file, the task and the field, and the exit code is 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from labelgate.errors import InputError
from labelgate.stages.preference.read import read_label_studio_pairwise, read_label_studio_ranker


def convert(kind: str, source: Path, target: Path, *, prompt_field: str = "prompt",
            a_field: str = "answer1", b_field: str = "answer2", items_field: str = "items",
            text_field: str = "body") -> int:
    """Write `source` (a Label Studio export) as JSON Lines at `target`; returns the rows."""
    if kind == "pairwise":
        frame = read_label_studio_pairwise(source, prompt_field=prompt_field,
                                           a_field=a_field, b_field=b_field)
    else:
        frame = read_label_studio_ranker(source, prompt_field=prompt_field,
                                         items_field=items_field, text_field=text_field)
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.rename({"_row": "task"}).write_ndjson(target)
    return frame.height


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["pairwise", "ranker"])
    ap.add_argument("source", type=Path)
    ap.add_argument("target", type=Path)
    for name, default in (("prompt-field", "prompt"), ("a-field", "answer1"),
                          ("b-field", "answer2"), ("items-field", "items"),
                          ("text-field", "body")):
        ap.add_argument(f"--{name}", default=default)
    args = ap.parse_args(argv)
    try:
        rows = convert(args.kind, args.source, args.target, prompt_field=args.prompt_field,
                       a_field=args.a_field, b_field=args.b_field,
                       items_field=args.items_field, text_field=args.text_field)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shape = "judgments" if args.kind == "pairwise" else "rankings"
    print(f"{args.target}: {rows} rows (preference.shape: {shape})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
