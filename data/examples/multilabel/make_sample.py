"""Build data/examples/multilabel/ from Debian's package index (issue 25).

Reads the amd64 ``Packages`` index of Debian 12 (bookworm) main that ``apt-get update``
leaves in /var/lib/apt/lists (or the file given as the first argument): each binary
package's name, source package, one-line description and debtags (``Tag:``). Keeps the
packages with at least one of `TAGS`, drops their other tags, and writes a seeded sample:

- items.jsonl: id and package (the package name), source (its source package: the
  split group), text (the description), tags (a JSON list), plus a few rows with planted
  contract failures;
- annotations.jsonl: three simulated annotators re-tagging 300 of the items;
- planted.json: which rows were planted with what.

Run: ``python data/examples/multilabel/make_sample.py [Packages file]``.
"""

from __future__ import annotations

import glob
import json
import random
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROWS = 4000
SEED = 25
TAGS = [
    "role::program", "role::shared-lib", "role::devel-lib", "role::documentation",
    "role::app-data", "role::plugin", "implemented-in::perl", "implemented-in::python",
    "interface::commandline", "interface::graphical", "uitoolkit::gtk", "uitoolkit::qt",
    "use::gameplaying", "use::editing", "use::converting", "works-with::audio",
    "works-with::image", "network::server", "works-with::mail", "works-with::db",
    "field::biology", "field::mathematics", "made-of::font",
]


def read_index(path: str | None) -> str:
    if path is None:
        found = sorted(glob.glob("/var/lib/apt/lists/*debian_dists_bookworm_main_binary-"
                                 "amd64_Packages*"))
        if not found:
            sys.exit("no bookworm Packages index in /var/lib/apt/lists: run apt-get update "
                     "or give the file")
        path = found[0]
    if path.endswith(".lz4"):
        return subprocess.run(["lz4cat", path], check=True, capture_output=True,
                              text=True).stdout
    return Path(path).read_text()


def packages(text: str) -> list[dict[str, object]]:
    out = []
    keep = set(TAGS)
    for rec in text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*(?:\n .*)*)", rec, re.M))
        if "Tag" not in fields or "Package" not in fields:
            continue
        tags = sorted({t.strip() for t in fields["Tag"].replace("\n", " ").split(",")} & keep)
        if not tags:
            continue
        source = fields.get("Source", fields["Package"]).split(" ")[0]
        out.append({"id": fields["Package"], "package": fields["Package"], "source": source,
                    "text": fields.get("Description", "").strip(), "tags": tags})
    return out


def plant(rows: list[dict[str, object]], rng: random.Random) -> dict[str, list[str]]:
    """Contract failures the demo's quarantine shows."""
    picks = rng.sample(range(len(rows)), 12)
    planted: dict[str, list[str]] = {"unknown_tag": [], "min_tags": [], "tags_missing": []}
    for n, i in enumerate(picks):
        row = rows[i]
        if n < 5:
            row["tags"] = [*row["tags"], "role::programme"]  # type: ignore[list-item]
            planted["unknown_tag"].append(str(row["id"]))
        elif n < 9:
            row["tags"] = []
            planted["min_tags"].append(str(row["id"]))
        else:
            row["tags"] = None
            planted["tags_missing"].append(str(row["id"]))
    return planted


def annotations(rows: list[dict[str, object]], rng: random.Random) -> list[dict[str, object]]:
    """Three simulated annotators: each drops a given tag with p 0.1 (the careless one 0.3)
    and adds a random tag with p 0.05 (0.2)."""
    out = []
    items = [r for r in rows if r["tags"]]
    for row in rng.sample(items, 300):
        for who, drop, add in (("ann-a", 0.1, 0.05), ("ann-b", 0.1, 0.05),
                               ("ann-careless", 0.3, 0.2)):
            tags = [t for t in row["tags"] if rng.random() > drop]  # type: ignore[union-attr]
            if rng.random() < add:
                tags.append(rng.choice(TAGS))
            out.append({"item": row["id"], "annotator": who, "tags": sorted(set(tags))})
    return out


def main() -> None:
    rng = random.Random(SEED)
    every = packages(read_index(sys.argv[1] if len(sys.argv) > 1 else None))
    rows = sorted(rng.sample(every, ROWS), key=lambda r: str(r["id"]))
    planted = plant(rows, rng)
    with open(HERE / "items.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(HERE / "annotations.jsonl", "w") as f:
        for a in annotations(rows, rng):
            f.write(json.dumps(a) + "\n")
    (HERE / "planted.json").write_text(json.dumps(planted, indent=1) + "\n")
    print(f"{len(every)} tagged packages; wrote {len(rows)} items")


if __name__ == "__main__":
    main()
