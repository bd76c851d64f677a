"""One name, one meaning; each default in one place.

A stage parameter's default lives in its notebook's parameters cell. This test fails when
a function of the stage package, a ``ketamine-cbf`` subcommand option or the book's
configuration states another value for the same name, and when a name that several stages
declare has no shared description (``ketamine_cbf._docs.docdict``).
"""

import ast
import dataclasses
import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import pytest
import yaml

from ketamine_cbf import _docs
from ketamine_cbf.config import DEFAULT_SEED
from ketamine_cbf.runner import INJECTED

ROOT = Path(__file__).resolve().parents[1]
STAGE_PACKAGE = {"00_dataset": "dataset", "01_quantification": "quantification",
                 "02_normalisation": "normalisation", "03_voxelwise": "voxelwise",
                 "04_roi_clinical": "roi_clinical", "05_receptors": "receptors"}
CLI_OF_STAGE = {"01_quantification": "quantify", "02_normalisation": "normalise"}
#: Same name, different default, on purpose: (module.function, parameter) -> why.
EXEMPT = {
    ("ketamine_cbf.voxelwise.nilearn_compat.permuted_ols_one_sample", "n_perm"):
        "nilearn's signature and default (10000), reproduced for the side-by-side check",
    ("ketamine_cbf.voxelwise.nilearn_compat.non_parametric_inference", "n_perm"):
        "nilearn's signature and default (10000), reproduced for the side-by-side check",
    ("ketamine_cbf.voxelwise.nilearn_compat.non_parametric_inference", "tfce"):
        "nilearn's signature and default (False)",
    ("ketamine_cbf.voxelwise.nilearn_compat.non_parametric_inference", "two_sided"):
        "nilearn's signature (two_sided_test)",
}


def _notebook_defaults(stage):
    nb = json.loads((ROOT / "notebooks" / f"{stage}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    out = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def _norm(v):
    if isinstance(v, tuple):
        return [_norm(x) for x in v]
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def _public_callables(package):
    pkg = importlib.import_module(f"ketamine_cbf.{package}")
    mods = [pkg] + [importlib.import_module(i.name)
                    for i in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
                    if not i.name.endswith("__main__")]
    seen = set()
    for m in mods:
        for name in getattr(m, "__all__", []):
            obj = getattr(m, name, None)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                yield f"{obj.__module__}.{obj.__qualname__}", obj


def _defaults_of(obj):
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        return {f.name: f.default for f in dataclasses.fields(obj)
                if f.default is not dataclasses.MISSING}
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return {}
    return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("stage", list(STAGE_PACKAGE))
def test_package_defaults_equal_the_notebook_default(stage):
    nb = _notebook_defaults(stage)
    wrong = []
    for qualname, obj in _public_callables(STAGE_PACKAGE[stage]):
        for name, default in _defaults_of(obj).items():
            if name in nb and name not in INJECTED and (qualname, name) not in EXEMPT:
                if default is not None and _norm(default) != _norm(nb[name]):
                    wrong.append(f"{qualname}({name}={default!r}) but the notebook says {nb[name]!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("stage", list(CLI_OF_STAGE))
def test_command_line_defaults_equal_the_notebook_default(stage):
    from ketamine_cbf.cli.main import build_parser

    nb = _notebook_defaults(stage)
    sub = build_parser()._subparsers._group_actions[0].choices[CLI_OF_STAGE[stage]]
    wrong = [f"--{a.dest.replace('_', '-')} {a.default!r} but the notebook says {nb[a.dest]!r}"
             for a in sub._actions
             if a.dest in nb and a.dest not in INJECTED and a.default is not None
             and _norm(a.default) != _norm(nb[a.dest])]
    assert not wrong, "\n".join(wrong)


def test_every_notebook_seed_default_is_the_master_seed():
    for stage in STAGE_PACKAGE:
        assert _notebook_defaults(stage).get("seed", DEFAULT_SEED) == DEFAULT_SEED, stage


@pytest.mark.parametrize("config", ["default.yml", "tiny.yml"])
def test_configurations_state_only_departures_from_the_defaults(config):
    cfg = yaml.safe_load((ROOT / "config" / config).read_text())
    assert cfg["seed"] == DEFAULT_SEED
    restated = [f"{stage}.{k}: {v!r}" for stage, values in (cfg.get("stages") or {}).items()
                for k, v in (values or {}).items() if _norm(_notebook_defaults(stage).get(k, object())) == _norm(v)]
    assert not restated, f"config/{config} restates notebook defaults (a second place): {restated}"


def test_a_name_several_stages_declare_has_one_shared_meaning():
    owners = {}
    for stage in STAGE_PACKAGE:
        for name in _notebook_defaults(stage):
            if name not in INJECTED:
                owners.setdefault(name, []).append(stage)
    shared = {k: v for k, v in owners.items() if len(v) > 1}
    undocumented = [f"{k} ({', '.join(v)})" for k, v in shared.items() if k not in _docs.docdict]
    assert not undocumented, ("parameters declared by several stages need one shared description "
                              f"in ketamine_cbf._docs: {undocumented}")


def test_the_old_clashing_names_are_gone():
    # gm_threshold meant three thresholds, n_perm two counts and alpha two error rates
    for stage, old in [("02_normalisation", "gm_threshold"), ("03_voxelwise", "gm_threshold"),
                       ("04_roi_clinical", "gm_threshold"), ("04_roi_clinical", "n_perm"),
                       ("03_voxelwise", "alpha"), ("05_receptors", "alpha")]:
        assert old not in _notebook_defaults(stage), f"{stage} still declares {old!r}"


def test_fill_doc_fills_shared_text_with_indentation():
    @_docs.fill_doc
    def f(seed=0):
        """Do it.

        Parameters
        ----------
        %(seed)s
        """

    assert "seed : int" in f.__doc__
    assert "\n            Master seed" in f.__doc__  # continuation lines: the docstring indent + 4
    with pytest.raises(ValueError, match="another meaning"):
        _docs.register({"seed": "seed : str\n    Something else."})
