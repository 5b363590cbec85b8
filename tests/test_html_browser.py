"""The HTML report in a real browser: headless Chromium (Debian's `chromium` package) loads
report.html from disk, and the test reads the DOM it built and a screenshot it took.

The tests install nothing: they use the browser in $LABELGATE_CHROMIUM (a path or a command
name) or the first of chromium, chromium-browser, google-chrome on PATH, and skip, saying
why, when there is none. `bash scripts/install_chromium.sh` installs Debian's chromium (root
or passwordless sudo, apt-get); CI's script (.ci/run) runs it before `make test`. With a
browser this module takes ~10 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelgate.report.html import write_html
from tests.test_html_report import (
    HOSTILE,
    HOSTILE_TABLE,
    full_report,
    history_frame,
    label_issue_frame,
    parse,
)

CHROMIUM_ENV = "LABELGATE_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Would set data-pwned on <body> if any of it ran as markup or script.
PAYLOAD = ("<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
           "<script>document.body.setAttribute('data-pwned','script')</script>")
SECTIONS = ("gate", "rows", "contract", "classes", "label-issues", "agreement", "duplicates",
            "splits", "trends", "metrics", "paths")


def find_chromium() -> tuple[str | None, str]:
    """The browser to use and, when there is none, why: $LABELGATE_CHROMIUM when set (a
    path or a command name), else the first of CHROMIUM_NAMES on PATH. Installs nothing."""
    wanted = os.environ.get(CHROMIUM_ENV, "").strip()
    if wanted:
        found = shutil.which(wanted)
        return found, "" if found else f"${CHROMIUM_ENV}={wanted!r} is not an executable"
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found, ""
    return None, f"none of {', '.join(CHROMIUM_NAMES)} on PATH and ${CHROMIUM_ENV} unset"


@pytest.fixture(scope="session")
def chromium() -> str:
    found, why = find_chromium()
    if found is None:
        pytest.skip(f"no Chromium ({why}): `bash scripts/install_chromium.sh` installs it; "
                    "CI's script (.ci/run) does")
    return found


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("chromium-profile")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
        "--mute-audio", f"--user-data-dir={profile}", *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True)


def hostile_report() -> dict[str, Any]:
    rep = full_report()
    rep["label_issues"]["top"].append({"id": "t0666", "text": PAYLOAD, "given": "positive",
                                       "suggested": "negative", "quality": 0.002})
    rep["quarantine"]["examples"][1]["failure_value"] = PAYLOAD
    return rep


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html-report")
    return write_html(hostile_report(), path=out, history=history_frame(),
                      label_issues=label_issue_frame())


def test_control_page_runs_the_payload(chromium: str, profile: Path, tmp_path: Path) -> None:
    """The payload does run when it is not escaped: the checks below are meaningful."""
    page = tmp_path / "control.html"
    page.write_text(f"<!DOCTYPE html><html><body><p>{PAYLOAD}</p></body></html>")
    dom = run_chromium(chromium, profile, "--dump-dom", page.as_uri()).stdout
    assert re.search(r"<body[^>]*data-pwned=\"(img|script)\"", dom) is not None


def test_dom_has_sections_plots_and_hostile_text_as_text(chromium: str, profile: Path,
                                                         report_file: Path) -> None:
    dom_html = run_chromium(chromium, profile, "--dump-dom", report_file.as_uri()).stdout
    dom = parse(dom_html)
    assert set(SECTIONS) <= set(dom.ids), sorted(set(SECTIONS) - set(dom.ids))
    # inline SVG plots, as elements of the DOM (not images): every plot the file has
    n_plots = report_file.read_text(encoding="utf-8").count('<svg class="plot"')
    assert n_plots >= 15
    assert dom.tags.count("svg") == n_plots
    assert "img" not in dom.tags and "script" not in dom.tags
    assert re.search(r"<body[^>]*data-pwned", dom_html) is None
    text = "".join(dom.text)
    assert HOSTILE in text and HOSTILE_TABLE in text and PAYLOAD in text
    assert "GATE FAILED" in text
    assert "input 3,000 = valid 2,980 + quarantined 15 + excluded 5 — adds up" in text


def test_screenshot_shows_the_verdict_on_top(chromium: str, profile: Path, report_file: Path,
                                             tmp_path: Path) -> None:
    from PIL import Image  # pillow comes with matplotlib

    shot = tmp_path / "report.png"
    run_chromium(chromium, profile, f"--screenshot={shot}", "--window-size=1280,4000",
                 report_file.as_uri())
    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        assert rgb.size == (1280, 4000)
        top = rgb.crop((0, 0, 400, 80))
        # the red "GATE FAILED" pill is in the top-left corner
        px = np.asarray(top, dtype=np.int16)
        red = int(((px[..., 0] > 180) & (px[..., 1] < 70) & (px[..., 2] < 80)).sum())
        assert red > 500
        # the page is not blank below the fold: plots and tables drew something
        colors = rgb.crop((0, 800, 1280, 4000)).getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 50
