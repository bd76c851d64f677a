"""Tables with a TSV download and figures with alt text, as the stage notebooks display them.

Unit tests of the HTML, then a real Jupyter Book build (the book's own _config.yml and
extension) of a notebook whose outputs were produced by ``show_table`` / ``show_figure`` and by
a plain matplotlib figure with a markdown caption: the website must contain the table, a
download whose bytes are the TSV file written to disk, and images with alt text.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import matplotlib
import nbformat as nbf
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf import display as bookutils

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sample_table() -> pd.DataFrame:
    return pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(1, 61)],
                         "gm_cbf": np.linspace(40.123456789, 70.0, 60),
                         "note": ["<b>not bold</b>"] + ["ok"] * 59})


def data_uri_bytes(html_text: str) -> bytes:
    m = re.search(r'href="data:text/tab-separated-values;charset=utf-8;base64,([^"]+)"', html_text)
    assert m, "no TSV download link"
    return base64.b64decode(m.group(1))


@pytest.fixture
def captured(monkeypatch):
    """Capture what show_table / show_figure pass to IPython's display()."""
    out = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: out.append((obj, raw)))
    return out


def test_show_table_writes_the_tsv_and_links_exactly_its_bytes(tmp_path, captured):
    df = sample_table()
    path = tmp_path / "qc.tsv"
    assert bookutils.show_table(df, path, caption="QC per scan", relative_to=tmp_path) is None
    (bundle, raw), = captured
    assert raw is True and set(bundle) == {"text/html", "text/plain"}
    html_text = bundle["text/html"]
    assert data_uri_bytes(html_text) == path.read_bytes()
    assert pd.read_csv(path, sep="\t").shape == (60, 3)
    assert 'download="qc.tsv"' in html_text
    assert "showing 50 of 60 rows" in html_text and "<code>qc.tsv</code>" in html_text
    assert html_text.count("<tr") == 51             # header + 50 shown rows
    assert "<b>not bold</b>" not in html_text       # cell contents are escaped
    assert "QC per scan" in html_text


def test_show_table_without_a_path_serialises_like_write_tsv(tmp_path, captured):
    from ketamine_cbf.io.provenance import write_tsv

    df = sample_table().head(3)
    assert bookutils.show_table(df) is None
    write_tsv(tmp_path / "ref.tsv", df)
    assert data_uri_bytes(captured[0][0]["text/html"]) == (tmp_path / "ref.tsv").read_bytes()


def test_show_figure_requires_caption_and_alt_and_embeds_the_png(tmp_path, captured):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with pytest.raises(ValueError, match="alt"):
        bookutils.figure_html(b"png", "a caption", " ")
    with pytest.raises(ValueError, match="caption"):
        bookutils.figure_html(b"png", "", "alt")
    bookutils.show_figure(fig, caption="A line & a caption", alt='A diagonal "line"',
                          path=tmp_path / "f.png")
    html_text = captured[0][0]["text/html"]
    assert 'alt="A diagonal &quot;line&quot;"' in html_text
    assert "<figcaption>A line &amp; a caption</figcaption>" in html_text
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', html_text).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == (tmp_path / "f.png").read_bytes()
    assert not plt.fignum_exists(fig.number)        # closed: not shown twice inline


def _output(bundle: dict) -> dict:
    return nbf.v4.new_output("display_data", data=bundle)


@pytest.mark.slow
def test_outputs_render_in_a_real_book_build(tmp_path, captured):
    """Build a one-page book with the project's _config.yml and check the HTML a reader gets."""
    df = sample_table().head(5)
    tsv = tmp_path / "derivatives" / "roi_values.tsv"
    tsv.parent.mkdir()
    bookutils.show_table(df, tsv, caption="ROI values")
    fig, ax = plt.subplots()
    ax.bar(["a", "b"], [1, 2])
    bookutils.show_figure(fig, caption="Two bars.", alt="A bar chart with two bars, the second twice as tall.")
    fig2, ax2 = plt.subplots()
    ax2.plot([1, 2, 3])
    import io
    buf = io.BytesIO()
    fig2.savefig(buf, format="png")
    plt.close(fig2)

    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c1 = nbf.v4.new_code_cell("show_table(df, path, caption='ROI values')")
    c1.outputs = [_output(captured[0][0])]
    c2 = nbf.v4.new_code_cell("show_figure(fig, ...)")
    c2.outputs = [_output(captured[1][0])]
    c3 = nbf.v4.new_code_cell("plt.plot([1, 2, 3])")
    c3.outputs = [_output({"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": "<Figure>"})]
    nb.cells = [nbf.v4.new_markdown_cell("# Demo stage"), c1, c2, c3,
                nbf.v4.new_markdown_cell("**Figure 2.** A rising line. *Alt text: a straight line rising "
                                         "from left to right.* It rises.")]
    book = tmp_path / "book-src"
    (book / "book" / "stages").mkdir(parents=True)
    shutil.copy2(ROOT / "_config.yml", book / "_config.yml")
    shutil.copytree(ROOT / "book" / "_ext", book / "book" / "_ext")
    shutil.copytree(ROOT / "book" / "_static", book / "book" / "_static")
    shutil.copytree(ROOT / "book" / "_extra", book / "book" / "_extra")
    shutil.copy2(ROOT / "book" / "references.bib", book / "book" / "references.bib")
    nbf.write(nb, book / "book" / "stages" / "00_demo.ipynb")
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/stages/00_demo\n")
    exe = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(exe), "build", str(book), "--builder", "html", "-W", "-n", "--keep-going"],
                          cwd=book, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    html_text = (book / "_build" / "html" / "book" / "stages" / "00_demo.html").read_text(encoding="utf-8")
    # the table is real HTML (not escaped text), followed by a download of the exact file
    assert re.search(r'<table[^>]*class="[^"]*kcbf-table', html_text), "table not rendered as HTML"
    assert data_uri_bytes(html_text) == tsv.read_bytes()
    # the show_figure image and the plain matplotlib image (alt from its caption) have alt text
    alts = [unescape(a) for a in re.findall(r'<img[^>]*\balt="([^"]*)"', html_text)]
    assert "A bar chart with two bars, the second twice as tall." in alts
    assert "a straight line rising from left to right." in alts
    assert "<figcaption>Two bars.</figcaption>" in html_text


def test_show_figure_accepts_a_nilearn_display(tmp_path, monkeypatch):
    """nilearn displays have a savefig that only takes file names: their figure is used."""
    from nilearn import plotting

    from ketamine_cbf import display as bookutils
    from ketamine_cbf.reference.templates import template_t1

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    disp = plotting.plot_anat(template_t1(4), display_mode="z", cut_coords=[0])
    bookutils.show_figure(disp, caption="c", alt="a", path=tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'alt="a"' in shown[0]["text/html"]
