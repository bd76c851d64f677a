"""Sphinx extension of the ketamine-cbf book (loaded through _config.yml `local_extensions`).

Launch buttons of the stage pages open the *source* notebook: the pages render the executed
copies in ``book/stages/`` (generated, not in git), so a Binder link to them would 404. The
link is rewritten to ``notebooks/NN_name.ipynb``, the notebook a reader reruns. Without a
repository URL (local builds) the launch buttons are dropped instead of failing the build.

Each executed stage page gets a "How this page was computed" box under its title, from the
run record papermill stores in the notebook (date, duration, configuration, seed, every
stage parameter, and which ones differ from the notebook's defaults), so a reader who reran a
stage with ``-p NAME VALUE`` sees the value the page was computed with.

Notebook output images get the alt text of their markdown caption ("Alt text: ..." sentence,
else the caption), since matplotlib's inline PNGs carry none.

It also removes sphinx-thebe's duplicated inline script (a JavaScript error on every page).

The ``kcbf-api`` directive writes a package's API reference: an autosummary table of every
public function and class (the names in each module's ``__all__``), then each public
module rendered by autodoc (numpydoc through napoleon). Modules are found by walking the
package, so a new module appears on the page without editing it.

Docstrings cite with ``:footcite:t:`` / ``:footcite:p:`` and end with a References section
holding ``.. footbibliography::``: each docstring lists the works it cites, even when another
docstring of the page cites them too, and the footnotes made inside the ``{eval-rst}`` block
of an API page are registered in the page (see :func:`_footnote_transform`).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from docutils import nodes

STAGES_PREFIX = "book/stages/"


def source_notebook_url(url: str, pagename: str) -> str:
    """Rewrite a launch URL of an executed stage page to the stage's source notebook."""
    if not pagename.startswith(STAGES_PREFIX):
        return url
    name = pagename[len(STAGES_PREFIX):]
    return url.replace(f"{pagename}.ipynb", f"notebooks/{name}.ipynb")


def _rewrite_launch_buttons(app, pagename, templatename, context, doctree):
    for group in context.get("header_buttons", []) or []:
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = source_notebook_url(button["url"], pagename)


def _launch_buttons_need_a_repository(app, config):
    """Drop the launch buttons when no repository URL is configured (local builds).

    sphinx-book-theme cannot build a launch link without one (it fails on notebook pages);
    the publish workflow sets ``repository.url``, so the published site has the buttons.
    """
    options = config.html_theme_options
    if not str(options.get("repository_url") or "").strip():
        options.pop("launch_buttons", None)


def _is_thebe(asset) -> bool:
    text = str(asset) + str(getattr(asset, "attributes", {}).get("body", ""))
    return "thebe" in text.lower()


def _drop_thebe(app, pagename, templatename, context, doctree):
    """Remove sphinx-thebe's scripts: the book has no live code, and jupyter-book 1.0.4 with
    sphinx-book-theme 1.3 adds its inline config twice, which throws
    ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` on every page (and
    names a CDN URL)."""
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if not _is_thebe(a)]


#: Parameters injected by the runner that are paths (shown in one line, not in the list).
PATH_PARAMETERS = ("bids_dir", "derivatives_dir", "output_dir", "cache_dir")
#: Every parameter the runner injects (never reported as "changed from the default").
INJECTED = PATH_PARAMETERS + ("seed", "config_name")


def notebook_defaults(nb: dict) -> dict:
    """Literal values assigned in the cell tagged ``parameters`` (what the notebook declares)."""
    out = {}
    for cell in nb.get("cells", []):
        if "parameters" not in (cell.get("metadata", {}).get("tags") or []):
            continue
        src = "".join(cell.get("source", "")) if isinstance(cell.get("source"), list) else cell.get("source", "")
        try:
            tree = ast.parse(src)
        except SyntaxError:
            return out
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                try:
                    out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                except (ValueError, SyntaxError):
                    out[stmt.targets[0].id] = ast.unparse(stmt.value)
        break
    return out


def run_record(nb: dict) -> dict | None:
    """What papermill recorded about the run of an executed notebook (None if not executed)."""
    pm = nb.get("metadata", {}).get("papermill")
    if not pm:
        return None
    params = dict(pm.get("parameters") or {})
    defaults = notebook_defaults(nb)
    changed = {k: (v, defaults[k]) for k, v in params.items()
               if k in defaults and k not in INJECTED and v != defaults[k]}
    return {
        "parameters": params,
        "defaults": defaults,
        "changed": changed,
        "end_time": (pm.get("end_time") or "")[:16].replace("T", " "),
        "duration": pm.get("duration"),
        "version": pm.get("version", ""),
    }


def _literal(text: str) -> nodes.literal:
    return nodes.literal(text=text)


def _run_record_node(rec: dict) -> nodes.admonition:
    params = rec["parameters"]
    box = nodes.admonition(classes=["kcbf-run-record"])
    box += nodes.title(text="How this page was computed")
    p = nodes.paragraph()
    p += nodes.Text("Executed by ")
    p += _literal("ketamine-cbf run")
    p += nodes.Text(f" (papermill {rec['version']}) on {rec['end_time']} UTC")
    if rec.get("duration") is not None:
        p += nodes.Text(f" in {float(rec['duration']):.1f} s")
    p += nodes.Text("; configuration ")
    p += _literal(str(params.get("config_name", "?")))
    if "seed" in params:
        p += nodes.Text(", seed ")
        p += _literal(str(params["seed"]))
    if "bids_dir" in params:
        p += nodes.Text(", dataset ")
        p += _literal(str(params["bids_dir"]))
    p += nodes.Text(".")
    box += p
    shown = {k: v for k, v in params.items() if k not in PATH_PARAMETERS and k not in ("seed", "config_name")}
    if shown:
        lst = nodes.bullet_list()
        for k, v in shown.items():
            item = nodes.list_item()
            para = nodes.paragraph()
            para += _literal(f"{k} = {v!r}")
            if k in rec["changed"]:
                para += nodes.Text(f" (changed: the notebook's default is {rec['changed'][k][1]!r})")
            item += para
            lst += item
        intro = nodes.paragraph(text="Parameters set by the configuration or on the command line "
                                     "(all others have the defaults of the Parameters cell below):")
        box += intro
        box += lst
    else:
        box += nodes.paragraph(text="Every stage parameter has the default of the Parameters cell "
                                    "below.")
    return box


def _add_run_record(app, doctree):
    """Put a "how this page was computed" box under the title of each executed stage page."""
    docname = app.env.docname
    if not docname.startswith(STAGES_PREFIX):
        return
    path = Path(app.env.doc2path(docname))
    if path.suffix != ".ipynb" or not path.is_file():
        return
    try:
        rec = run_record(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return
    if rec is None:
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        return
    titles = [i for i, child in enumerate(section.children) if isinstance(child, nodes.title)]
    section.insert(titles[0] + 1 if titles else 0, _run_record_node(rec))


_ALT_RE = re.compile(r"Alt text:\s*(.+?[.!?])(?:\s|$)", re.S)


def caption_alt(text: str) -> str:
    """Alt text for a figure from its markdown caption: the caption's "Alt text: ..." sentence
    if it has one (the stage notebooks' convention), else the caption itself (shortened)."""
    m = _ALT_RE.search(text)
    if m:
        return " ".join(m.group(1).split())
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297].rsplit(" ", 1)[0] + "..."


def _is_cell(node) -> bool:
    return isinstance(node, nodes.container) and "cell" in node.get("classes", [])


def _caption_near(cell) -> str | None:
    """The markdown caption of a code cell's figure: the paragraph right after the cell, else
    the one right before it, if it reads like a caption ("Figure ..." or has "Alt text:")."""
    parent = cell.parent
    if parent is None:
        return None
    i = parent.index(cell)
    for j in (i + 1, i - 1):
        if 0 <= j < len(parent) and isinstance(parent[j], nodes.paragraph):
            text = parent[j].astext().strip()
            if text.lower().startswith(("figure", "fig.")) or "Alt text:" in text:
                return text
    return None


def _alt_from_captions(app, doctree):
    """Give every notebook output image without alt text the alt of its markdown caption.

    The stage notebooks put each figure's caption in a markdown cell next to it (the
    project's convention, with an explicit "Alt text: ..." sentence); matplotlib's inline
    PNG output itself carries no alt attribute. Images that still have none are left alone
    (the book's tests report them).
    """
    if not app.env.docname.startswith(STAGES_PREFIX):
        return
    for img in doctree.findall(nodes.image):
        if str(img.get("alt", "")).strip():
            continue
        cell = img.parent
        while cell is not None and not _is_cell(cell):
            cell = cell.parent
        if cell is None:
            continue
        caption = _caption_near(cell)
        if caption:
            img["alt"] = caption_alt(caption)


def _public_modules(package: str) -> list:
    """Public modules of ``package`` that declare ``__all__`` (the package first), in name order."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    mods = [pkg]
    for info in sorted(pkgutil.walk_packages(getattr(pkg, "__path__", []), package + "."),
                       key=lambda m: m.name):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        mods.append(importlib.import_module(info.name))
    return [m for m in mods if getattr(m, "__all__", None)]


def _api_lines(package: str) -> list[str]:
    """reST of a package's API: per public module, a title, a summary table and autodoc."""
    import inspect

    mods = _public_modules(package)
    if hasattr(mods[0], "__path__") and mods[0].__name__ == package:
        mods = mods[1:]  # a package's own __init__ only re-exports its modules' names
    lines = []
    for m in mods:
        title = f"``{m.__name__}``"
        if m.__name__ != package:  # a plain module is titled by the page itself
            lines += [title, "^" * len(title), ""]
        lines += [f".. currentmodule:: {m.__name__}", ""]
        names = [n for n in m.__all__ if inspect.isfunction(getattr(m, n, None))
                 or inspect.isclass(getattr(m, n, None))]
        if names:  # summary lines resolve their references in the module's own namespace
            lines += [".. autosummary::", "   :nosignatures:", ""] + [f"   {n}" for n in names] + [""]
        lines += [f".. automodule:: {m.__name__}", "   :members:", ""]
    return lines


def _api_directive():
    from docutils.parsers.rst import Directive
    from docutils.statemachine import StringList
    from sphinx.util.nodes import nested_parse_with_titles

    class KcbfApi(Directive):
        """``.. kcbf-api:: ketamine_cbf.voxelwise``: the package's public API, from ``__all__``."""

        required_arguments = 1

        def run(self):
            node = nodes.section()
            node.document = self.state.document
            source = f"<kcbf-api {self.arguments[0]}>"
            content = StringList(_api_lines(self.arguments[0]), source=source)
            nested_parse_with_titles(self.state, content, node)
            return node.children

    return KcbfApi


# ------------------------------------------------------------ footnote citations in docstrings
#: Footnote ids of ``:footcite:`` are unique per ``footbibliography`` (see below), and so
#: are the ids of the lists (else each ``{eval-rst}`` block of a page numbers them anew).
FOOTCITE_ID = "bib-{footbibliography_count}-{key}"
FOOTBIBLIOGRAPHY_ID = "bibliography-{footbibliography_count}"


def _footbibliography_directive():
    from sphinxcontrib.bibtex.foot_directives import FootBibliographyDirective

    class FootBibliographyPerDocstring(FootBibliographyDirective):
        """``footbibliography`` that lists every work cited since the previous one.

        sphinxcontrib-bibtex makes one footnote per work per page, so on an API page the
        second function citing a work would link to the first one's list and show an empty
        References section. Forgetting the works already listed makes each docstring's
        References complete (the footnote ids carry the list number, :data:`FOOTCITE_ID`).
        """

        def run(self):
            out = super().run()
            self.env.temp_data["bibtex_foot_old_refs"] = set()
            return out

    return FootBibliographyPerDocstring


def _footcite_id(app, config):
    if not config.bibtex_footcite_id:
        config.bibtex_footcite_id = FOOTCITE_ID
    if not config.bibtex_footbibliography_id:
        config.bibtex_footbibliography_id = FOOTBIBLIOGRAPHY_ID


def _footnote_transform():
    from docutils.transforms import Transform

    class RegisterFootcites(Transform):
        """Register the auto-numbered footnotes made inside an ``{eval-rst}`` block (``:footcite:``).

        MyST parses an ``{eval-rst}`` block (how the API pages call ``kcbf-api``) into a
        separate document and moves only its nodes into the page, so the page does not know
        the footnotes and their references, and docutils' footnote transform (priority 620)
        reports them as unknown targets. This registers them in the page first. Each block's
        document numbers its automatic ids from ``id1``, so a page with several blocks
        (``shared.md``) would repeat the references' ids: they get ids of their own.
        """

        default_priority = 610

        def apply(self, **kwargs):
            doc = self.document
            known = {id(n) for n in doc.autofootnotes}
            for fn in doc.findall(nodes.footnote):
                if fn.get("auto") and id(fn) not in known:
                    doc.note_autofootnote(fn)
                    doc.note_explicit_target(fn, fn)
            known = {id(r) for r in doc.autofootnote_refs}
            taken = {i for n in doc.findall(nodes.Element) for i in n["ids"]}
            k = 0
            for ref in doc.findall(nodes.footnote_reference):
                if ref.get("auto") and ref.get("refname") and id(ref) not in known:
                    k += 1
                    while f"bibref-{k}" in taken:
                        k += 1
                    ref["ids"] = [f"bibref-{k}"]
                    doc.note_autofootnote_ref(ref)
                    doc.note_footnote_ref(ref)

    return RegisterFootcites


def setup(app):
    app.add_directive("kcbf-api", _api_directive())
    app.setup_extension("sphinxcontrib.bibtex")  # then its footbibliography is replaced
    app.add_directive("footbibliography", _footbibliography_directive(), override=True)
    app.add_transform(_footnote_transform())
    app.connect("config-inited", _footcite_id)
    app.connect("doctree-read", _add_run_record)
    app.connect("doctree-read", _alt_from_captions)
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("config-inited", _launch_buttons_need_a_repository)
    # after sphinx-book-theme's add_launch_buttons (priority 501)
    app.connect("html-page-context", _rewrite_launch_buttons, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
