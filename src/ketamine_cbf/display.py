"""Display helpers for the stage notebooks: tables with a TSV download, figures with alt text.

The book renders the executed notebooks as they are (it never re-executes), so what a
notebook displays is what a reader gets. Two rules of the book are enforced here:

* every table has a download: :func:`show_table` writes the TSV (byte-identical to the
  derivative it saves with :func:`ketamine_cbf.io.provenance.write_tsv`) and displays the
  table followed by a link that downloads exactly those bytes;
* every figure has a caption and alt text: :func:`show_figure` displays the figure as
  ``<figure><img alt=...><figcaption>``.

Both display an HTML bundle (``text/html`` with a ``text/plain`` fallback). myst-nb renders the HTML unchanged in the website, and Jupyter
shows the same thing while one works on a notebook. Downloads are embedded as
``data:`` URIs, so they work offline, in a copied ``_build/html`` and on GitHub Pages, and
can never point at a file that has moved or changed since the notebook ran.

Usage in a notebook::

    from ketamine_cbf.display import show_table, show_figure
    show_table(df, Path(output_dir) / "roi_values.tsv", caption="Mean CBF per ROI and scan")
    show_figure(fig, caption="Group mean ΔCBF ...", alt="Axial slices showing ...")
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

__all__ = [
    "MAX_EMBED_BYTES", "table_html", "show_table", "figure_html", "figure_png", "save_figure",
    "show_figure",
]

#: Tables larger than this are not embedded for download (the TSV path is shown instead).
MAX_EMBED_BYTES = 5_000_000


def _tsv_bytes(df, path: str | os.PathLike | None, index: bool) -> tuple[bytes, str]:
    from ketamine_cbf.io import provenance

    if path is not None:
        path = Path(path)
        provenance.write_tsv(path, df, index=index)
        return path.read_bytes(), path.name
    buf = io.StringIO()
    df.to_csv(buf, sep="\t", index=index, float_format="%.10g", na_rep="n/a")
    return buf.getvalue().encode("utf-8"), "table.tsv"


def table_html(df, tsv: bytes, filename: str, caption: str | None = None, max_rows: int = 50,
               index: bool = False, float_format: str = "{:.4g}", source: str | None = None) -> str:
    """Return the HTML of a captioned table followed by its TSV download link.

    Parameters
    ----------
    df : pandas.DataFrame
        The table (the first ``max_rows`` rows are shown; the download has all rows).
    tsv : bytes
        The exact TSV bytes offered for download.
    filename : str
        Name the browser saves the download as.
    caption : str, optional
        Plain-text caption shown above the table.
    max_rows : int
        Rows shown on the page.
    index : bool
        Show the DataFrame index.
    float_format : str
        Format of floats on the page (the TSV keeps 10 significant digits).
    source : str, optional
        Where the file lives in the derivatives (shown next to the link).
    """
    n = len(df)
    shown = df.head(max_rows)
    fmt = (lambda x: float_format.format(x))
    table = shown.to_html(index=index, border=0, classes=["kcbf-table", "table"],
                          float_format=fmt, na_rep="n/a", escape=True)
    parts = ['<div class="kcbf-table-block">']
    if caption:
        parts.append(f'<p class="kcbf-caption"><strong>Table.</strong> {html.escape(caption)}</p>')
    parts.append(f'<div class="kcbf-table-scroll">{table}</div>')
    more = f" (showing {max_rows} of {n} rows)" if n > max_rows else f" ({n} rows)"
    if len(tsv) <= MAX_EMBED_BYTES:
        b64 = base64.b64encode(tsv).decode("ascii")
        link = (f'<a class="kcbf-download" download="{html.escape(filename)}" '
                f'href="data:text/tab-separated-values;charset=utf-8;base64,{b64}">'
                f'Download {html.escape(filename)}</a>')
    else:
        link = f'<span class="kcbf-download-too-big">{html.escape(filename)} is too large to embed</span>'
    where = f' &middot; <code>{html.escape(source)}</code>' if source else ""
    parts.append(f'<p class="kcbf-download-line">{link}{html.escape(more)}{where}</p>')
    parts.append("</div>")
    return "\n".join(parts)


def show_table(df, path: str | os.PathLike | None = None, caption: str | None = None, *,
               max_rows: int = 50, index: bool = False, float_format: str = "{:.4g}",
               relative_to: str | os.PathLike | None = None):
    """Save ``df`` as TSV at ``path`` (if given) and display it with a caption and a download link.

    Parameters
    ----------
    df : pandas.DataFrame
        The table.
    path : str or Path, optional
        Where to write the TSV (inside the stage's ``output_dir``). Written atomically with
        :func:`ketamine_cbf.io.provenance.write_tsv`; the download offers exactly these bytes.
        Without a path, the table is serialised the same way in memory.
    caption : str, optional
        Caption shown above the table.
    max_rows : int
        Number of rows shown on the page.
    index : bool
        Include the index (in the file and on the page).
    float_format : str
        Display format of floats.
    relative_to : str or Path, optional
        Show ``path`` relative to this folder (e.g. the derivatives root) next to the link.

    Returns
    -------
    None
        Nothing, so that a notebook cell ending with ``show_table(...)`` shows the table only
        (not also the path's repr); the file is at ``path``.
    """
    from IPython.display import display

    tsv, name = _tsv_bytes(df, path, index)
    source = None
    if path is not None:
        source = str(path)
        if relative_to is not None:
            try:
                source = str(Path(path).resolve().relative_to(Path(relative_to).resolve()))
            except ValueError:
                pass
    html_text = table_html(df, tsv, name, caption=caption, max_rows=max_rows, index=index,
                           float_format=float_format, source=source)
    plain = (f"{caption}\n" if caption else "") + df.head(max_rows).to_string(index=index)
    display({"text/html": html_text, "text/plain": plain}, raw=True)


def figure_html(png: bytes, caption: str, alt: str, width: str | None = None) -> str:
    """Return ``<figure>`` HTML with the PNG embedded, its alt text and its caption."""
    if not caption or not caption.strip():
        raise ValueError("a figure needs a caption")
    if not alt or not alt.strip():
        raise ValueError("a figure needs alt text (what the image shows, for readers who cannot see it)")
    b64 = base64.b64encode(png).decode("ascii")
    style = f' style="max-width:{html.escape(width)}"' if width else ""
    return (f'<figure class="kcbf-figure"><img src="data:image/png;base64,{b64}" '
            f'alt="{html.escape(alt, quote=True)}"{style}/>'
            f'<figcaption>{html.escape(caption)}</figcaption></figure>')


def _as_figure(fig):
    """The matplotlib figure of ``fig`` (a figure, or a nilearn display's ``frame_axes.figure``)."""
    from matplotlib.figure import Figure

    if isinstance(fig, Figure):
        return fig
    inner = getattr(getattr(fig, "frame_axes", None), "figure", None)
    if not isinstance(inner, Figure):
        raise TypeError(f"need a matplotlib figure or a nilearn display, got {type(fig).__name__}")
    return inner


def figure_png(fig, dpi: int = 110) -> bytes:
    """Return the PNG bytes of a figure, without a software/date stamp (reproducible bytes)."""
    buf = io.BytesIO()
    _as_figure(fig).savefig(buf, format="png", dpi=dpi, bbox_inches="tight",
                            metadata={"Software": None})
    return buf.getvalue()


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a figure as PNG atomically (reproducible bytes, see :func:`figure_png`); return the path.

    Parameters
    ----------
    fig : matplotlib.figure.Figure or nilearn display
    path : str or Path
        The PNG file (its folder must exist); written to a temporary name, then renamed.
    dpi : int
        Resolution.
    """
    from ketamine_cbf.io.provenance import atomic_path

    png = figure_png(fig, dpi)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(png)
    return Path(path)


def show_figure(fig, caption: str, alt: str, path: str | os.PathLike | None = None, *,
                dpi: int = 110, width: str | None = None):
    """Display a matplotlib figure with a caption and alt text (and optionally save it).

    The figure is closed afterwards so the inline backend does not show it a second time.

    Parameters
    ----------
    fig : matplotlib.figure.Figure or nilearn display
        The figure (nilearn displays are converted through their ``frame_axes.figure``).
    caption : str
        What the figure shows and what to notice (shown under it).
    alt : str
        Alternative text: a one-sentence description of the image for screen readers.
    path : str or Path, optional
        Also save the PNG here (inside the stage's ``output_dir``).
    dpi : int
        Resolution of the PNG.
    width : str, optional
        CSS max-width of the image (e.g. ``"600px"``).
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    # nilearn displays have their own savefig (filename only): use their matplotlib figure
    fig = _as_figure(fig)
    png = figure_png(fig, dpi)
    html_text = figure_html(png, caption, alt, width=width)
    if path is not None:
        from ketamine_cbf.io.provenance import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(png)
    plt.close(fig)
    display({"text/html": html_text, "text/plain": f"<figure: {caption}>"}, raw=True)
