"""Stage 3's defaults live in its notebook: same-named signature defaults must equal them."""

import ast
import inspect
import json
import types
from pathlib import Path

import pytest

from ketamine_cbf import voxelwise
from ketamine_cbf._docs import docdict

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_voxelwise.ipynb"
#: Injected by the runner into every stage (not stage defaults).
GLOBALS = {"seed", "bids_dir", "derivatives_dir", "output_dir", "config_name"}
#: nilearn's own signatures and defaults, kept so that code written for nilearn gives the
#: same numbers (n_perm=10000, tfce=False): these are nilearn's parameters, not the stage's.
NILEARN_DROP_INS = {"permuted_ols_one_sample", "non_parametric_inference"}


def _notebook_parameters() -> dict:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign)}


def _normalised(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _public_functions():
    for module in (getattr(voxelwise, m) for m in voxelwise.__all__):
        if not isinstance(module, types.ModuleType):
            continue
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) and obj.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", obj


def test_signature_defaults_equal_the_notebooks():
    params = _notebook_parameters()
    assert {"n_perm", "mask_gm_threshold", "fwe_alpha"} <= set(params)
    assert not {"gm_threshold", "alpha"} & set(params)   # renamed: one meaning per name
    checked, wrong = 0, []
    for qualname, f in _public_functions():
        if f.__name__ in NILEARN_DROP_INS:
            continue
        for p in inspect.signature(f).parameters.values():
            if p.name in params and p.name not in GLOBALS and p.default is not inspect.Parameter.empty:
                checked += 1
                if _normalised(p.default) != _normalised(params[p.name]):
                    wrong.append(f"{qualname}({p.name}={p.default!r}) != notebook {params[p.name]!r}")
    assert not wrong, "\n".join(wrong)
    assert checked > 30


def test_every_notebook_parameter_has_one_shared_text():
    """Each stage parameter is documented once (ketamine_cbf._docs or voxelwise._docs)."""
    params = set(_notebook_parameters()) - GLOBALS
    missing = sorted(p for p in params if p not in docdict)
    assert not missing, missing


@pytest.mark.parametrize("name", ["gm_threshold", "alpha"])
def test_old_parameter_names_are_gone(name):
    for qualname, f in _public_functions():
        assert name not in inspect.signature(f).parameters, qualname
