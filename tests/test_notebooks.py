"""Notebook lint: a stage notebook tells the story; the computation lives in the package.

Fails on a function or class definition in a notebook, a code cell over 20 lines, a
one-letter module alias, or an import of a package other than the stage's own, the shared
rooms a notebook may use (display, io, study) and third-party libraries.
"""

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: notebook -> its stage package
STAGE_PACKAGE = {"00_dataset": "dataset", "01_quantification": "quantification",
                 "02_normalisation": "normalisation", "03_voxelwise": "voxelwise",
                 "04_roi_clinical": "roi_clinical", "05_receptors": "receptors"}
SHARED_FOR_NOTEBOOKS = {"display", "io", "study"}
MAX_CELL_LINES = 20


def _code_cells(path):
    nb = json.loads(path.read_text())
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "code":
            src = "".join(c["source"])
            # IPython magics and shell escapes are not Python
            src = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())
            yield i, src, c.get("metadata", {}).get("tags", [])


def test_every_stage_has_a_package():
    assert [p.stem for p in NOTEBOOKS] == list(STAGE_PACKAGE)
    for pkg in STAGE_PACKAGE.values():
        assert (ROOT / "src" / "ketamine_cbf" / pkg / "__init__.py").is_file()


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_definitions_and_short_cells(nb):
    problems = []
    for i, src, tags in _code_cells(nb):
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                kind = "lambda" if isinstance(node, ast.Lambda) else f"definition of {node.name}"
                problems.append(f"cell {i}: {kind} (move it into the package)")
        n = len([ln for ln in src.splitlines() if ln.strip()])
        if n > MAX_CELL_LINES and "parameters" not in tags:
            problems.append(f"cell {i}: {n} code lines (at most {MAX_CELL_LINES})")
    assert not problems, f"{nb.name}: " + "; ".join(problems)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_imports_use_full_module_names_of_allowed_packages(nb):
    own = STAGE_PACKAGE[nb.stem]
    allowed = {own} | SHARED_FOR_NOTEBOOKS
    problems = []
    for i, src, _ in _code_cells(nb):
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    if a.asname is not None and len(a.asname) == 1:
                        problems.append(f"cell {i}: one-letter alias '{a.name} as {a.asname}'")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ketamine_cbf"):
                parts = node.module.split(".")
                first = parts[1] if len(parts) > 1 else None
                targets = [first] if first else [a.name for a in node.names]
                for t in targets:
                    if t not in allowed:
                        problems.append(f"cell {i}: imports ketamine_cbf.{t} (a notebook imports its "
                                        f"own stage package '{own}', display, io and study)")
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("ketamine_cbf."):
                        t = a.name.split(".")[1]
                        if t not in allowed:
                            problems.append(f"cell {i}: imports {a.name}")
    assert not problems, f"{nb.name}: " + "; ".join(problems)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_documents_every_parameter(nb):
    cells = [(i, src) for i, src, tags in _code_cells(nb) if "parameters" in tags]
    assert len(cells) == 1, f"{nb.name}: exactly one cell tagged 'parameters'"
    undocumented = [ln.split("=")[0].strip() for ln in cells[0][1].splitlines()
                    if "=" in ln and not ln.lstrip().startswith("#") and "#" not in ln.split("=", 1)[1]]
    assert not undocumented, f"{nb.name}: parameters without a comment: {undocumented}"
