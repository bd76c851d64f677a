"""The book's content rules, checked on the sources and on a built site.

Sources (fast): every page in the table of contents exists and has a title; every stage has an
exercises page whose exercises each come with a hidden solution and a command that runs the
variant; every parameter a page tells readers to set (``-p NAME VALUE``, ``-p STAGE.NAME``,
``papermill ... -p NAME``, the YAML of the configuration examples) is declared in the
parameters cell of a stage notebook (read with papermill, as the runner reads it), so the
pages cannot drift from the notebooks; every citation exists; every figure has alt text and
a caption; the numbers in the primer and the solutions are what the equations give.

Built site (the ``tiny_pipeline`` fixture): every page is there with its title; every stage
page has its run record; every table in a stage page's outputs has a TSV download and every
image alt text.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import math
import re
import shlex
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ketamine_cbf.quantification import primer
from ketamine_cbf import runner
from ketamine_cbf.cli.main import build_parser
from ketamine_cbf.config import TOP_LEVEL_KEYS
from ketamine_cbf.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PLACEHOLDER_MARK = "placeholder frame"
TOP_LEVEL_OVERRIDES = {"seed", "bids_dir", "derivatives_dir", "name"}


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return files


def prose_pages() -> list[Path]:
    return [ROOT / f"{f}.md" for f in toc_files() if not f.startswith("book/stages/")]


def stage_notebooks() -> list[runner.Stage]:
    return runner.discover_stages(ROOT / "notebooks")


def is_placeholder(stage: runner.Stage) -> bool:
    return PLACEHOLDER_MARK in stage.path.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- the pages
def test_every_toc_page_exists_and_has_a_title():
    for f in toc_files():
        if f.startswith("book/stages/"):
            name = f.rsplit("/", 1)[1]
            assert (ROOT / "notebooks" / f"{name}.ipynb").is_file(), f"{f}: no notebooks/{name}.ipynb"
            continue
        page = ROOT / f"{f}.md"
        assert page.is_file(), f"{f} is in _toc.yml but {page} does not exist"
        first = next(line for line in page.read_text(encoding="utf-8").splitlines() if line.strip())
        assert re.match(r"# \S", first), f"{page.name}: the first line must be the page title (# ...)"


def test_every_stage_is_a_chapter_with_an_exercises_page():
    toc = (ROOT / "_toc.yml").read_text()
    files = toc_files()
    for s in stage_notebooks():
        assert f"book/stages/{s.name}" in files, f"{s.name} missing from _toc.yml"
        ex = BOOK / "exercises" / f"{s.name}.md"
        assert ex.is_file(), f"no exercises page for {s.name}"
        assert f"book/exercises/{s.name}" in files, f"{ex} not in _toc.yml"
    assert "book/glossary" in files and "book/references" in files and "book/primer" in files


ADMONITION = re.compile(r"^(`{4,}|:{3,})\{admonition\}\s*(.+?)\n(.*?)^\1\s*$", re.M | re.S)


def admonitions(text: str) -> list[tuple[str, str, str]]:
    """(title, classes, body) of every top-level {admonition} block."""
    out = []
    for m in ADMONITION.finditer(text):
        body = m.group(3)
        cls = re.search(r"^:class:\s*(.+)$", body, re.M)
        out.append((m.group(2).strip(), cls.group(1) if cls else "", body))
    return out


def exercise_pages() -> list[Path]:
    return sorted((BOOK / "exercises").glob("*.md"))


def test_exercises_have_hidden_solutions_and_runnable_commands():
    pages = exercise_pages()
    assert len(pages) >= 6
    for page in pages:
        blocks = admonitions(page.read_text(encoding="utf-8"))
        exercises = {re.match(r"Exercise (\d+\.\d+)", t).group(1): (c, b) for t, c, b in blocks
                     if t.startswith("Exercise")}
        solutions = {re.match(r"Solution (\d+\.\d+)", t).group(1): (c, b) for t, c, b in blocks
                     if t.startswith("Solution")}
        assert exercises, f"{page.name}: no exercise"
        assert set(exercises) == set(solutions), f"{page.name}: exercises {sorted(exercises)} vs solutions {sorted(solutions)}"
        for n, (cls, body) in exercises.items():
            assert "exercise" in cls.split(), f"{page.name} exercise {n}: class 'exercise' missing"
            assert "dropdown" not in cls.split(), f"{page.name} exercise {n} must be visible"
            assert re.search(r"```bash\n.*(ketamine-cbf|papermill|python)", body, re.S), \
                f"{page.name} exercise {n}: no command that runs the variant"
            assert "**Predict" in body, f"{page.name} exercise {n}: ask for a prediction"
        for n, (cls, body) in solutions.items():
            assert "dropdown" in cls.split(), f"{page.name} solution {n} is not hidden (class dropdown)"
        assert any("ketamine-cbf run" in b or "papermill" in b for _, b in exercises.values()), \
            f"{page.name}: no exercise reruns a stage"


# ----------------------------------------------------------------------------- parameters
def _commands(text: str) -> list[list[str]]:
    """Shell commands in ```bash blocks and `inline code` (continuation lines joined)."""
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        block = re.sub(r"\\\n\s*", " ", block)
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                cmds.append(line)
    cmds += re.findall(r"`([^`\n]*ketamine-cbf run[^`\n]*)`", text)
    out = []
    for c in cmds:
        try:
            out.append(shlex.split(c))
        except ValueError:
            continue
    return out


def parameter_uses(text: str) -> list[tuple[str, str, str]]:
    """(tool, stage or '', name) for every parameter set by a command in ``text``."""
    uses = []
    for argv in _commands(text):
        tool = next((a for a in argv if a.endswith(("ketamine-cbf", "papermill"))), None)
        if tool is None:
            continue
        i0 = argv.index(tool)
        if tool.endswith("ketamine-cbf"):
            if i0 + 1 >= len(argv) or argv[i0 + 1] != "run":
                continue
            stages = [argv[i + 1] for i, a in enumerate(argv) if a == "--stage"]
            for s in stages:
                uses.append(("stage", s, ""))
            for i, a in enumerate(argv):
                if a in ("-p", "--parameter") and i + 1 < len(argv):
                    key = argv[i + 1]
                    stage, _, name = key.rpartition(".")
                    if not stage and stages and name not in TOP_LEVEL_OVERRIDES:
                        # a bare NAME with --stage: one of the selected stages must declare it,
                        # or the override silently reaches none of the stages that run
                        stage = "@" + ",".join(stages)
                    uses.append(("ketamine-cbf", stage, name))
        else:
            nb = next((a for a in argv[i0 + 1:] if a.endswith(".ipynb")), "")
            stage = Path(nb).stem
            for i, a in enumerate(argv):
                if a in ("-p", "--parameters") and i + 1 < len(argv):
                    uses.append(("papermill", stage, argv[i + 1]))
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        cfg = yaml.safe_load(block) or {}
        for name in (cfg.get("parameters") or {}):
            uses.append(("yaml", "", name))
        for stage, params in (cfg.get("stages") or {}).items():
            for name in params or {}:
                uses.append(("yaml", stage, name))
        unknown = set(cfg) - TOP_LEVEL_KEYS
        assert not unknown, f"configuration example with unknown keys {unknown}"
    return uses


def test_parameter_extraction_reads_every_form():
    text = ("```bash\n.venv/bin/ketamine-cbf run --stage 03_voxelwise -p n_perm 100 \\\n"
            "    -p 02_normalisation.fwhm 0 -p seed 7\n"
            ".venv/bin/papermill notebooks/05_receptors.ipynb /tmp/x.ipynb -p n_nulls 10\n```\n"
            "and `ketamine-cbf run -p 04_roi_clinical.n_boot 9`\n"
            "```yaml\nname: x\nparameters:\n  arm_column: drug\nstages:\n  01_quantification:\n"
            "    t1_blood: null\n```\n")
    assert sorted(parameter_uses(text)) == sorted([
        ("stage", "03_voxelwise", ""), ("ketamine-cbf", "@03_voxelwise", "n_perm"),
        ("ketamine-cbf", "02_normalisation", "fwhm"), ("ketamine-cbf", "", "seed"),
        ("papermill", "05_receptors", "n_nulls"), ("ketamine-cbf", "04_roi_clinical", "n_boot"),
        ("yaml", "", "arm_column"), ("yaml", "01_quantification", "t1_blood")])


def test_every_parameter_the_pages_use_is_declared_by_a_stage_notebook():
    """Drift check: the exercises and examples must name parameters the notebooks declare.

    Stages that are still placeholder notebooks are not checked (reported as a skip).
    """
    stages = stage_notebooks()
    problems, unchecked = [], set()
    declared = {}
    for s in stages:
        try:
            declared[s.name] = set(runner.declared_parameters(s))
        except UsageError as e:  # the runner could not run this stage either
            problems.append(str(e))
            declared[s.name] = set()
    placeholders = {s.name for s in stages if is_placeholder(s)}
    pages = [ROOT / "README.md"] + prose_pages() + exercise_pages()
    for page in dict.fromkeys(pages):
        for tool, stage, name in parameter_uses(page.read_text(encoding="utf-8")):
            where = f"{page.relative_to(ROOT)}: {tool} {stage + '.' if stage else ''}{name}"
            if tool == "stage":
                if runner._match_stage(stages, stage) is None:
                    problems.append(f"{page.relative_to(ROOT)}: --stage {stage} is not a stage")
                continue
            if not stage and name in TOP_LEVEL_OVERRIDES and tool == "ketamine-cbf":
                continue
            if stage.startswith("@"):
                selected = [runner._match_stage(stages, x) for x in stage[1:].split(",")]
                if any(x is None for x in selected):
                    continue  # reported by the --stage check
                if not any(name in declared[x.name] for x in selected):
                    (unchecked.add(where) if any(x.name in placeholders for x in selected)
                     else problems.append(f"{where}: none of the selected stages declares it"))
            elif stage:
                s = runner._match_stage(stages, stage)
                if s is None:
                    problems.append(f"{where}: no stage {stage!r}")
                elif name not in declared[s.name]:
                    (unchecked.add(where) if s.name in placeholders
                     else problems.append(f"{where}: not declared by {s.name}"))
            elif not any(name in d for d in declared.values()):
                if placeholders:
                    unchecked.add(where)
                else:
                    problems.append(f"{where}: no stage notebook declares it")
    assert not problems, "parameters used in the book but not declared:\n" + "\n".join(problems)
    if unchecked:
        pytest.skip(f"{len(unchecked)} parameter use(s) not checked while stages "
                    f"{', '.join(sorted(placeholders))} are placeholders: "
                    + "; ".join(sorted(unchecked)))


# ----------------------------------------------------------------------------- citations, figures
def bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (BOOK / "references.bib").read_text(encoding="utf-8"), re.M)


def test_bibliography_keys_are_unique():
    keys = bib_keys()
    dup = sorted({k for k in keys if keys.count(k) > 1})
    assert not dup, f"duplicate keys in book/references.bib: {dup}"


def test_every_citation_in_pages_and_notebooks_exists():
    keys = set(bib_keys())
    texts = {p.relative_to(ROOT): p.read_text(encoding="utf-8") for p in BOOK.rglob("*.md")}
    for s in stage_notebooks():
        texts[s.path.relative_to(ROOT)] = s.path.read_text(encoding="utf-8")
    missing = []
    for where, text in texts.items():
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text):
            missing += [f"{where}: {k.strip()}" for k in group.split(",") if k.strip() not in keys]
    assert not missing, "citations without a references.bib entry:\n" + "\n".join(missing)


def test_every_figure_in_the_prose_has_alt_text_and_a_caption():
    for page in prose_pages():
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"(\.\. plot::|```\{figure\}|:::\{figure\}|```\{image\})(.*?)(\n\s*\n(?!\s*:))", text, re.S):
            block = m.group(2)
            assert re.search(r":alt:\s*\S", block), f"{page.name}: figure without :alt: — {block[:80]!r}"
            if "image" not in m.group(1):
                assert re.search(r":caption:\s*\S", block) or "figure" in m.group(1), \
                    f"{page.name}: figure without :caption:"
        for alt in re.findall(r"!\[([^\]]*)\]\(", text):
            assert alt.strip(), f"{page.name}: markdown image without alt text"


def test_no_backtick_fence_has_backticks_in_its_directive_line():
    """CommonMark ends a ``` fence's info string at a backtick: such a directive is silently
    rendered as text (use a ::: fence when the caption contains `code`)."""
    for page in BOOK.rglob("*.md"):
        for line in page.read_text(encoding="utf-8").splitlines():
            assert not re.match(r"^\s*`{3,}\{[^}]+\}.*`", line), f"{page.name}: {line[:80]}"


def test_primer_has_its_computed_figures_and_numbered_equations():
    text = (BOOK / "primer.md").read_text(encoding="utf-8")
    for fn in ("plot_kinetic_curves", "plot_att_bias", "plot_background_suppression"):
        assert f"from ketamine_cbf.quantification.primer import {fn}" in text
        assert hasattr(primer, fn)
    for label in ("eq-gkm", "eq-whitepaper", "eq-m0-tr", "eq-alpha-bs"):
        assert f"$$ ({label})" in text


# ----------------------------------------------------------------------------- numbers
def test_worked_example_and_solutions_state_what_the_equations_give():
    """Numbers written in the prose are recomputed here from ketamine_cbf.quantification.primer."""
    primer_md = (BOOK / "primer.md").read_text(encoding="utf-8")
    cbf = primer.whitepaper_cbf(0.0068, 1.0, pld=1.8, tau=1.8, alpha=0.85)
    assert f"= {float(cbf):.1f} ml/100 g/min" in primer_md
    ex1 = (BOOK / "exercises" / "01_quantification.md").read_text(encoding="utf-8")
    a = primer.whitepaper_cbf(0.007, 1, pld=2.0, tau=1.5, alpha=0.72) / primer.whitepaper_cbf(0.007, 1, pld=2.0, tau=1.5, alpha=0.85)
    assert f"{float(a):.2f}: +{100 * (float(a) - 1):.0f} %" in ex1
    t = primer.whitepaper_cbf(0.007, 1, pld=2.0, tau=1.5, t1_blood=1.35) / primer.whitepaper_cbf(0.007, 1, pld=2.0, tau=1.5, t1_blood=1.65)
    assert f"about **{100 * (float(t) - 1):.0f} %**" in ex1
    factors = [float(primer.m0_recovery_factor(tr, 1.3)) for tr in (6.0, 4.0, 3.5)]
    assert "{:.2f}, {:.2f} and {:.2f}".format(*factors) in ex1
    assert f"about\n{100 * (1 / factors[2] - 1):.0f} %" in ex1 or f"about {100 * (1 / factors[2] - 1):.0f} %" in ex1
    ex4 = (BOOK / "exercises" / "04_roi_clinical.md").read_text(encoding="utf-8")
    z, se = math.atanh(0.56), 1 / math.sqrt(23)
    lo, hi = math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)
    assert f"**{lo:.2f} to {hi:.2f}**" in ex4
    ex3 = (BOOK / "exercises" / "03_voxelwise.md").read_text(encoding="utf-8")
    assert f"{1 / 101:.4f}" in ex3 and f"{math.sqrt(0.05 * 0.95 / 100):.3f}" in ex3


def test_intro_rerun_recipe_is_accepted_by_the_cli():
    """The newcomer's commands in the introduction parse with the real CLI."""
    text = (BOOK / "intro.md").read_text(encoding="utf-8")
    cmds = [c for c in _commands(text) if c and c[0].endswith("ketamine-cbf")]
    assert ["--stage", "03_voxelwise", "-p", "n_perm", "1000"] == cmds[0][2:]
    parser = build_parser()
    for argv in cmds:
        args = parser.parse_args(argv[1:])
        assert args.command in ("run", "book")
    assert "_build/html/book/stages/03_voxelwise.html" in text
    assert "make book" in text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "ketamine-cbf run --stage 03_voxelwise -p n_perm" in readme


# ----------------------------------------------------------------------------- the extension
def load_extension():
    spec = importlib.util.spec_from_file_location("kcbf_book", BOOK / "_ext" / "kcbf_book.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_launch_links_of_stage_pages_open_the_source_notebook():
    ext = load_extension()
    url = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/stages/03_voxelwise.ipynb"
    assert ext.source_notebook_url(url, "book/stages/03_voxelwise").endswith("lab/tree/notebooks/03_voxelwise.ipynb")
    other = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/primer.ipynb"
    assert ext.source_notebook_url(other, "book/primer") == other


def test_run_record_reports_parameters_that_differ_from_the_notebook_defaults():
    ext = load_extension()
    nb = {"metadata": {"papermill": {"parameters": {"seed": 3, "n_perm": 100, "fwhm": 6.0,
                                                    "output_dir": "x", "config_name": "tiny"},
                                     "end_time": "2026-01-02T03:04:05", "duration": 1.5,
                                     "version": "2.7.0"}},
          "cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]},
                     "source": "seed = 0\nn_perm = 5000  # permutations\nfwhm = 6.0\noutput_dir = ''\n"}]}
    rec = ext.run_record(nb)
    assert rec["changed"] == {"n_perm": (100, 5000)}
    assert rec["end_time"] == "2026-01-02 03:04"
    assert ext.run_record({"metadata": {}, "cells": []}) is None


# ----------------------------------------------------------------------------- the built site
class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, dict]] = []
        self.tables: list[list[str]] = []     # class chain of the ancestors of each <table>
        self.imgs: list[dict] = []
        self.links: list[dict] = []
        self.h1 = ""
        self._in_h1 = False
        self.run_record = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append([c for _, at in self.stack for c in (at.get("class") or "").split()])
        elif tag == "img":
            self.imgs.append(a)
        elif tag == "a":
            self.links.append(a)
        elif tag == "h1":
            self._in_h1 = True
        if "kcbf-run-record" in (a.get("class") or ""):
            self.run_record = True
        if tag not in ("img", "br", "hr", "meta", "link", "input", "col", "source", "wbr"):
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = False
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self._in_h1:
            self.h1 += data


def parse_page(path: Path) -> _Collect:
    c = _Collect()
    c.feed(path.read_text(encoding="utf-8"))
    return c


@pytest.mark.slow
def test_built_site_has_every_page_titles_and_run_records(tiny_pipeline):
    site = tiny_pipeline.site
    for f in toc_files():
        page = site / f"{f}.html"
        assert page.is_file(), f"{f} was not built"
        c = parse_page(page)
        assert c.h1.strip(), f"{f}: no <h1> title"
        if f.startswith("book/stages/"):
            assert c.run_record, f"{f}: no 'How this page was computed' box"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not served locally"


UNPARSED_MYST = re.compile(r"```\{|:::\{|\{(?:cite|term|doc|ref|eq|numref)(?::[a-z]+)?\}`")


def unparsed_myst(site: Path) -> list[str]:
    """Pages where MyST markup reached the reader as literal text (a silently broken directive)."""
    out = []
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site)
        if rel.parts[0].startswith("_"):
            continue
        text = re.sub(r"<(script|style|pre)\b.*?</\1>", "", page.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r"<[^>]+>", "", text)
        m = UNPARSED_MYST.search(text)
        if m:
            out.append(f"{rel}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}")
    return out


@pytest.mark.slow
def test_no_myst_markup_reaches_the_reader_as_text(tiny_pipeline):
    bad = unparsed_myst(tiny_pipeline.site)
    assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_stage_page_tables_have_tsv_downloads_and_images_alt_text(tiny_pipeline):
    """Every table in a stage page's outputs comes with a TSV download; every image has alt text."""
    problems = []
    for page in sorted((tiny_pipeline.site / "book" / "stages").glob("*.html")):
        c = parse_page(page)
        n_downloads = 0
        for a in c.links:
            href = a.get("href", "")
            if "download" in a and href.startswith("data:text/tab-separated-values"):
                tsv = base64.b64decode(href.split("base64,", 1)[1])
                df = pd.read_csv(io.BytesIO(tsv), sep="\t")
                assert df.shape[1] >= 1, f"{page.name}: empty TSV download"
                n_downloads += 1
        outputs = [t for t in c.tables if "cell_output" in t or "output" in t]
        bare = [t for t in outputs if "kcbf-table-block" not in t]
        if bare:
            problems.append(f"{page.name}: {len(bare)} output table(s) without a TSV download "
                            "(display tables with ketamine_cbf.display.show_table)")
        for img in c.imgs:
            if not (img.get("alt") or "").strip():
                problems.append(f"{page.name}: image without alt text "
                                "(display figures with ketamine_cbf.display.show_figure)")
                break
    assert not problems, "\n".join(problems)


def test_alt_text_is_taken_from_the_caption():
    ext = load_extension()
    cap = ("Figure 1. One slice of every CBF map. Alt text: a grid of small brain slices, one per "
           "scan; titles in red mark failures. Each map is on its own grid.")
    assert ext.caption_alt(cap) == "a grid of small brain slices, one per scan; titles in red mark failures."
    assert ext.caption_alt("Figure 2. Estimated against true CBF.") == "Figure 2. Estimated against true CBF."
    assert len(ext.caption_alt("Figure 3. " + "word " * 200)) <= 300
