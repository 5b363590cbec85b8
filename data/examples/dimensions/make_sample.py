"""Build data/examples/dimensions/ from Debian's package index (issue 25, part 2).

Reads the amd64 ``Packages`` index of Debian 12 (bookworm) main that ``apt-get update``
leaves in /var/lib/apt/lists (or the file given as the first argument; the reader is the
multi-label example's): each binary package's name, source package, one-line description,
archive section and installed size. Keeps the packages of `SECTIONS` and writes a seeded
sample with three label dimensions per row:

- ``section`` (nominal): the package's archive section, as Debian records it;
- ``size`` (interval): log10 of the installed size in KiB, as Debian records it;
- ``size_class`` (ordinal): tiny < small < medium < large, **derived** from the installed
  size (below 64 KiB, 512 KiB, 4 MiB, and the rest), so the example has an ordinal column;

then plants label errors in each dimension and a few contract failures, and writes three
simulated annotators relabeling 300 of the packages. Files:

- items.jsonl: id (the package), package, source (the split group), text, section,
  size_class, size;
- annotations.jsonl: item, annotator, section, size_class, size;
- planted.json: which rows were planted with what (and their true values).

Run: ``python data/examples/dimensions/make_sample.py [Packages file]``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROWS = 3000
SEED = 25
SECTIONS = ["libs", "libdevel", "python", "doc", "perl", "devel", "utils", "net", "games",
            "fonts", "science", "admin"]
CLASSES = ["tiny", "small", "medium", "large"]
BOUNDS_KIB = (64, 512, 4096)
SWAPS, SHIFTS, SIZE_ERRORS = 60, 40, 40


def _reader() -> object:
    spec = importlib.util.spec_from_file_location("ml_sample", HERE.parent / "multilabel" /
                                                  "make_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def size_class(kib: int) -> str:
    return CLASSES[sum(kib >= b for b in BOUNDS_KIB)]


def packages(text: str) -> list[dict[str, object]]:
    out = []
    for rec in text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)", rec, re.M))
        section = fields.get("Section", "")
        if section not in SECTIONS or "Installed-Size" not in fields:
            continue
        kib = max(int(fields["Installed-Size"]), 1)
        out.append({"id": fields["Package"], "package": fields["Package"],
                    "source": fields.get("Source", fields["Package"]).split(" ")[0],
                    "text": fields.get("Description", "").strip(), "section": section,
                    "size_class": size_class(kib), "size": round(math.log10(kib), 2)})
    return out


def plant(rows: list[dict[str, object]], rng: random.Random) -> dict[str, object]:
    """Label errors in each dimension (disjoint rows) and 8 contract failures."""
    picks = rng.sample(range(len(rows)), SWAPS + SHIFTS + SIZE_ERRORS + 8)
    planted: dict[str, list[dict[str, object]]] = {"section_swap": [], "size_class_shift": [],
                                                   "size_error": [], "contract": []}
    for n, i in enumerate(picks):
        row = rows[i]
        if n < SWAPS:
            was = row["section"]
            row["section"] = rng.choice([s for s in SECTIONS if s != was])
            planted["section_swap"].append({"id": row["id"], "true": was, "given": row["section"]})
        elif n < SWAPS + SHIFTS:
            was = CLASSES.index(str(row["size_class"]))
            row["size_class"] = CLASSES[was + 2 if was < 2 else was - 2]
            planted["size_class_shift"].append({"id": row["id"], "true": CLASSES[was],
                                                "given": row["size_class"]})
        elif n < SWAPS + SHIFTS + SIZE_ERRORS:
            was = float(row["size"])  # type: ignore[arg-type]
            row["size"] = round(was + 2.0 if was < 3.5 else was - 2.0, 2)
            planted["size_error"].append({"id": row["id"], "true": was, "given": row["size"]})
        else:
            k = n - SWAPS - SHIFTS - SIZE_ERRORS
            bad = [("section", "misc-typo")] * 3 + [("size_class", "huge")] * 2 + [
                ("size", -1.0)] * 2 + [("size", None)]
            row[bad[k][0]] = bad[k][1]
            planted["contract"].append({"id": row["id"], "column": bad[k][0],
                                        "given": bad[k][1]})
    return planted


def annotations(rows: list[dict[str, object]], truth: dict[str, dict[str, object]],
                rng: random.Random) -> list[dict[str, object]]:
    """Three simulated annotators relabel 300 rows from the true values: ann-a and ann-b
    keep the section with p 0.9, the size class with p 0.85 (else one step off) and the size
    within N(0, 0.15); ann-careless 0.6, 0.6 and N(0, 0.6)."""
    out = []
    for row in rng.sample(rows, 300):
        true = truth[str(row["id"])]
        for who, keep_section, keep_class, noise in (("ann-a", 0.9, 0.85, 0.15),
                                                     ("ann-b", 0.9, 0.85, 0.15),
                                                     ("ann-careless", 0.6, 0.6, 0.6)):
            section = true["section"] if rng.random() < keep_section else rng.choice(SECTIONS)
            c = CLASSES.index(str(true["size_class"]))
            if rng.random() >= keep_class:
                c = min(max(c + rng.choice((-1, 1)), 0), len(CLASSES) - 1)
            size = min(max(float(true["size"]) + rng.gauss(0, noise), 0.0), 7.0)  # type: ignore[arg-type]
            out.append({"item": row["id"], "annotator": who, "section": section,
                        "size_class": CLASSES[c], "size": round(size, 2)})
    return out


def main() -> None:
    rng = random.Random(SEED)
    index = _reader().read_index(sys.argv[1] if len(sys.argv) > 1 else None)  # type: ignore[attr-defined]
    every = packages(index)
    rows = sorted(rng.sample(every, ROWS), key=lambda r: str(r["id"]))
    truth = {str(r["id"]): dict(r) for r in rows}
    planted = plant(rows, rng)
    with open(HERE / "items.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(HERE / "annotations.jsonl", "w") as f:
        for a in annotations(rows, truth, rng):
            f.write(json.dumps(a) + "\n")
    (HERE / "planted.json").write_text(json.dumps(planted, indent=1) + "\n")
    print(f"{len(every)} packages in the sections; wrote {len(rows)} items")


if __name__ == "__main__":
    main()
