"""The built website in a real browser: Debian's headless Chromium, offline.

Every page of the tiny build is loaded from a local HTTP server; a page fails on a JavaScript
error or console error, a failed or external request, a broken image, an image without alt
text, maths MathJax did not typeset, a solution visible before a click, or a broken internal
link or anchor (see ``scripts/browser_check.py``). Screenshots of the landing page and of
every stage chapter are saved next to the site (``<book dir>/_build/screenshots/``) and the
folder is printed.

Without Chromium the tests are skipped with the reason, except under CI=true where a missing
browser is a failure (``.ci/run`` installs it).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.browser


def load_checker():
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "scripts" / "browser_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["browser_check"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def checker(in_ci_module):
    mod = load_checker()
    if mod.find_chromium() is None:
        msg = "no headless Chromium found (Debian: apt-get install chromium; or set CHROMIUM=/path)"
        if in_ci_module:
            pytest.fail(f"CI=true but {msg}")
        pytest.skip(msg)
    return mod


@pytest.fixture(scope="module")
def in_ci_module() -> bool:
    import os

    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _report(capsys, text: str) -> None:
    """Print past pytest's output capture, so the report and screenshot folder always show."""
    with capsys.disabled():
        print()
        for line in text.splitlines():
            print(f"[browser] {line}")


@pytest.mark.slow
def test_every_page_of_the_site_passes_in_chromium(checker, tiny_pipeline, request, capsys):
    site = tiny_pipeline.site
    shots_dir = site.parent / "screenshots"
    wanted = checker.default_screenshot_pages(site)
    report = checker.check_site(site, shots_dir, wanted)
    summary = report.summary()
    (site.parent / "browser-report.txt").write_text(summary + "\n")
    _report(capsys, summary)
    request.node.user_properties.append(("screenshots", str(shots_dir)))

    pages = {p.path for p in report.pages}
    assert "index.html" in pages and "book/intro.html" in pages
    stage_pages = [p for p in pages if p.startswith("book/stages/")]
    assert len(stage_pages) >= 6, stage_pages
    assert not report.errors, summary
    # the primer's maths was typeset and its computed figures loaded
    primer = next(p for p in report.pages if p.path == "book/primer.html")
    assert primer.info["mjx"] > 0 and primer.info["images"] >= 3
    # exercises really hide their solutions behind a toggle
    ex = [p for p in report.pages if p.path.startswith("book/exercises/")]
    assert ex and all(p.info["solutions"] > 0 and p.info["solutions_open"] == 0 for p in ex)
    # one screenshot per wanted page, each a real PNG of a laid-out page
    assert len(report.screenshots) == len(wanted) >= 7
    for shot in report.screenshots:
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, shot


BAD_PAGE = """<!DOCTYPE html><html><head><title>bad</title>
<script src="https://cdn.example.invalid/lib.js"></script></head>
<body><h1>Bad</h1>
<img src="missing.png" alt="a missing image">
<img src="ok.png">
<a href="other.html">gone</a> <a href="good.html#nowhere">no anchor</a> <a href="good.html#here">fine</a>
<div class="admonition dropdown"><p class="admonition-title">Solution</p><p>visible answer</p></div>
<span class="math">\\(x\\)</span>
<script>console.error("boom"); undefinedFunction();</script>
</body></html>"""

GOOD_PAGE = """<!DOCTYPE html><html><head><title>good</title><link rel="icon" href="data:,"></head>
<body><h1 id="here">Good</h1><img src="ok.png" alt="a one-pixel image"><a href="index.html">home</a></body></html>"""

PNG_1PX = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@pytest.mark.slow
def test_the_checker_finds_each_kind_of_problem(checker, tmp_path):
    """A page with one defect of every kind: each is reported; a clean page passes."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(BAD_PAGE.replace("<title>bad", '<link rel="icon" href="data:,"><title>bad'))
    (site / "good.html").write_text(GOOD_PAGE)
    (site / "ok.png").write_bytes(PNG_1PX)
    report = checker.check_site(site, tmp_path / "shots", ["good.html"])
    errors = {p.path: "\n".join(p.errors) for p in report.pages}
    assert errors["good.html"] == "", errors["good.html"]
    bad = errors["index.html"]
    for needle in ("request to another host", "broken image", "image without alt text",
                   "broken link", "broken anchor", "solution(s) visible", "not typeset by MathJax",
                   "console.error: boom", "JavaScript exception"):
        assert needle in bad, f"not reported: {needle}\n{bad}"
    assert "good.html#here" not in bad
    assert [s.name for s in report.screenshots] == ["good.png"]
