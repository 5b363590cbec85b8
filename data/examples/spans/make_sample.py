"""Build data/examples/spans/ from Debian's package index (issue 25).

Real text, labels from a gazetteer: the one-line descriptions of Debian 12 (bookworm)
main packages (the ``Packages`` index ``apt-get update`` leaves in /var/lib/apt/lists, or
the file given as the first argument), with spans marked wherever a word of `GAZETTEER`
occurs (programming languages LANG, user-interface toolkits and desktops UI, file formats
FORMAT). Writes a seeded sample:

- items.jsonl: id (package), source (its source package: the split group), text, spans
  ({start, end, label, text}); with planted span defects (planted.json says which);
- annotations.jsonl: two simulated annotators re-marking 200 of the texts (one drops a
  span with p 0.1, the other also shifts a boundary with p 0.15);
- planted.json: the rows with planted span defects and planted type swaps.

Run: ``python data/examples/spans/make_sample.py [Packages file]``.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path
from typing import Any


def _multilabel_sample() -> Any:
    """data/examples/multilabel/make_sample.py, for its index reader."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "multilabel" / "make_sample.py"
    spec = importlib.util.spec_from_file_location("multilabel_make_sample", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HERE = Path(__file__).parent
ROWS = 3000
SEED = 25
GAZETTEER = {
    "LANG": ["Python", "Perl", "Java", "Ruby", "Haskell", "OCaml", "Lua", "PHP", "JavaScript",
             "Rust", "Erlang", "Tcl", "Scheme", "Fortran", "R", "C", "C++", "Go", "Node.js",
             "TeX", "LaTeX", "Emacs Lisp", "Common Lisp", "Vala", "Scala", "Elixir"],
    "UI": ["GTK", "GTK+", "GTK3", "GTK 3", "GTK 4", "Qt", "Qt5", "Qt 5", "Qt6", "KDE", "GNOME",
           "SDL", "ncurses", "wxWidgets", "Tk", "X11", "Wayland", "Xfce", "Plasma"],
    "FORMAT": ["PDF", "XML", "JSON", "HTML", "MP3", "PNG", "JPEG", "SVG", "CSV", "YAML", "TIFF",
               "Ogg", "FLAC", "EPUB", "PostScript", "Markdown", "TOML", "HDF5", "NetCDF",
               "GIF", "WAV", "MIDI", "ZIP", "tar"],
}


def _pattern() -> re.Pattern[str]:
    words = sorted({w for ws in GAZETTEER.values() for w in ws}, key=len, reverse=True)
    alts = "|".join(re.escape(w) for w in words)
    return re.compile(rf"(?<![\w+#.-])({alts})(?![\w+#-]|\.\w)")


def mark(text: str, pattern: re.Pattern[str], kind: dict[str, str]) -> list[dict[str, Any]]:
    return [{"start": m.start(), "end": m.end(), "label": kind[m.group(1)],
             "text": m.group(1)} for m in pattern.finditer(text)]


def rows_from(index: str) -> list[dict[str, Any]]:
    kind = {w: k for k, ws in GAZETTEER.items() for w in ws}
    pattern = _pattern()
    out = []
    for rec in index.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)", rec, re.M))
        text = fields.get("Description", "").strip()
        if not text or "Package" not in fields:
            continue
        spans = mark(text, pattern, kind)
        if spans:
            source = fields.get("Source", fields["Package"]).split(" ")[0]
            out.append({"id": fields["Package"], "source": source, "text": text,
                        "spans": spans})
    return out


def plant(rows: list[dict[str, Any]], rng: random.Random) -> dict[str, list[str]]:
    picks = rng.sample(range(len(rows)), 10)
    planted: dict[str, list[str]] = {"span_offsets": [], "span_text": [], "unknown_type": [],
                                     "span_overlap": [], "type_swap": []}
    for n, i in enumerate(picks):
        r, s = rows[i], rows[i]["spans"][0]
        if n < 2:
            s["end"] = len(r["text"]) + 5
            planted["span_offsets"].append(r["id"])
        elif n < 4:
            s["text"] = s["text"].lower() + "x"
            planted["span_text"].append(r["id"])
        elif n < 6:
            s["label"] = "LANGUAGE"
            planted["unknown_type"].append(r["id"])
        else:
            r["spans"].append({"start": s["start"], "end": s["end"], "label": s["label"]})
            planted["span_overlap"].append(r["id"])
    others = [i for i in range(len(rows)) if i not in picks]
    for i in rng.sample(others, 60):  # a type swapped: the token model should doubt it
        s = rng.choice(rows[i]["spans"])
        s["label"] = rng.choice([k for k in GAZETTEER if k != s["label"]])
        planted["type_swap"].append(rows[i]["id"])
    return planted


def annotations(rows: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for r in rng.sample(rows, 200):
        for who, drop, shift in (("ann-a", 0.1, 0.0), ("ann-b", 0.1, 0.15)):
            spans = []
            for s in r["spans"]:
                if rng.random() < drop:
                    continue
                start, end = s["start"], s["end"]
                if rng.random() < shift and end < len(r["text"]):
                    end += 1
                spans.append({"start": start, "end": end, "label": s["label"]})
            out.append({"item": r["id"], "annotator": who, "spans": spans})
    return out


def main() -> None:
    rng = random.Random(SEED)
    read_index = _multilabel_sample().read_index
    every = rows_from(read_index(sys.argv[1] if len(sys.argv) > 1 else None))
    rows = sorted(rng.sample(every, ROWS), key=lambda r: str(r["id"]))
    clean = json.loads(json.dumps(rows))
    planted = plant(rows, rng)
    ann = annotations(clean, rng)
    with open(HERE / "items.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(HERE / "annotations.jsonl", "w") as f:
        for a in ann:
            f.write(json.dumps(a) + "\n")
    (HERE / "planted.json").write_text(json.dumps(planted, indent=1) + "\n")
    print(f"{len(every)} descriptions with a gazetteer match; wrote {len(rows)} items")


if __name__ == "__main__":
    main()
