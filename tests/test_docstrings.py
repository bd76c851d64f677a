"""Docstring examples run (doctest) in `make test`, and the pure formula functions have them."""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import ketamine_cbf

MODULES = sorted(i.name for i in pkgutil.walk_packages(ketamine_cbf.__path__, "ketamine_cbf.")
                 if not i.name.endswith("__main__"))
#: Pure formula functions that must show a runnable call and its real output.
MUST_HAVE_EXAMPLES = {
    "quantification": ["cbf_pcasl", "cbf_pasl", "kinetic_pcasl", "m0_recovery_factor"],
    "stattools": ["fdr", "fisher_ci", "monte_carlo_p", "rng"],
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name):
    mod = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    for test in doctest.DocTestFinder(exclude_empty=True).find(mod, name):
        if test.globs.get("__name__") != name:
            continue
        runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)


def _find(package, func):
    pkg = importlib.import_module(f"ketamine_cbf.{package}")
    mods = [pkg] + [importlib.import_module(i.name) for i in pkgutil.walk_packages(
        getattr(pkg, "__path__", []), pkg.__name__ + ".")]
    for m in mods:
        obj = getattr(m, func, None)
        if inspect.isfunction(obj) and obj.__module__.startswith(f"ketamine_cbf.{package}"):
            return obj
    raise AssertionError(f"no function {func} in ketamine_cbf.{package}")


@pytest.mark.parametrize("package,func", [(p, f) for p, fs in MUST_HAVE_EXAMPLES.items() for f in fs])
def test_formula_functions_have_examples(package, func):
    doc = _find(package, func).__doc__ or ""
    assert "Examples" in doc and ">>>" in doc, f"{package}.{func} needs a runnable Examples section"
