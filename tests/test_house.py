"""The house by stage: module sizes, import direction between stage packages, public names.

* no module over 700 lines;
* a stage package never imports a later stage's package, and the shared rooms (study,
  stattools, imaging, display, progress, io, reference, config, runner, errors) never import
  a stage package: earlier stages' outputs are read through ``ketamine_cbf.io``;
* every public module of a stage package or shared room declares ``__all__`` and every name
  in it exists;
* every seed stream is derived through ``ketamine_cbf.stattools`` (no hand-made generators).
"""

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import ketamine_cbf

SRC = Path(ketamine_cbf.__file__).resolve().parent
STAGES = ["dataset", "quantification", "normalisation", "voxelwise", "roi_clinical", "receptors"]
SHARED = ["study", "stattools", "imaging", "display", "progress", "io", "reference", "config",
          "runner", "errors", "_docs"]
MAX_LINES = 700


def _modules():
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _room(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".py")


def _imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "ketamine_cbf":
                if len(parts) > 1:
                    rooms.add(parts[1])
                else:
                    rooms.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (use absolute ketamine_cbf.* imports)")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ketamine_cbf."):
                    rooms.add(a.name.split(".")[1])
    return rooms


def test_no_module_is_too_long():
    long = {str(p.relative_to(SRC)): n for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_stage_packages_never_import_a_later_stage():
    bad = []
    for p in _modules():
        room = _room(p)
        if room not in STAGES:
            continue
        for other in _imported_rooms(p) & set(STAGES):
            if STAGES.index(other) > STAGES.index(room):
                bad.append(f"{p.relative_to(SRC)} imports the later stage '{other}'")
    assert not bad, bad


def test_shared_rooms_never_import_a_stage_package():
    bad = [f"{p.relative_to(SRC)} imports '{r}'" for p in _modules() if _room(p) in SHARED
           for r in _imported_rooms(p) & set(STAGES + ["simulate"])]
    assert not bad, bad


def _public_modules():
    for pkg in STAGES + ["io", "reference", "simulate"]:
        mod = importlib.import_module(f"ketamine_cbf.{pkg}")
        yield mod
        for info in pkgutil.walk_packages(mod.__path__, mod.__name__ + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                yield importlib.import_module(info.name)
    for name in ["study", "stattools", "imaging", "display", "progress"]:
        yield importlib.import_module(f"ketamine_cbf.{name}")


@pytest.mark.parametrize("mod", list(_public_modules()), ids=lambda m: m.__name__)
def test_public_modules_declare_their_public_names(mod):
    assert hasattr(mod, "__all__"), f"{mod.__name__} has no __all__"
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{mod.__name__}.__all__ names missing objects: {missing}"
    assert mod.__doc__ and mod.__doc__.strip(), f"{mod.__name__} has no module docstring"


HAND_MADE_RNG = re.compile(r"np\.random\.(default_rng|SeedSequence|RandomState|seed)\s*\(")


def test_random_streams_come_from_stattools():
    offenders = []
    for p in _modules():
        if p.name == "stattools.py":
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if HAND_MADE_RNG.search(code) and "RandomState(int_seed" not in code.replace(" ", ""):
                offenders.append(f"{p.relative_to(SRC)}:{i}: {line.strip()}")
    assert not offenders, "build random streams with ketamine_cbf.stattools.rng/int_seed:\n" + "\n".join(offenders)


def test_api_pages_cover_every_package():
    book = SRC.parents[1] / "book" / "api"
    text = " ".join(p.read_text() for p in book.glob("*.md"))
    for pkg in STAGES + ["simulate", "study", "stattools", "imaging", "display", "io", "reference"]:
        assert f".. kcbf-api:: ketamine_cbf.{pkg}" in text, f"no API page for ketamine_cbf.{pkg}"
