"""Shared pytest fixtures, collected from one module per owner (tests/_fixtures_*.py)."""

import importlib
import os

import pytest

for _name in ("_fixtures_sim", "_fixtures_pipeline"):
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as e:  # a fixture module not written yet
        if e.name != _name:
            raise
        continue
    globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("__")})


def pytest_report_header(config):
    return f"ketamine-cbf tests (CI={os.environ.get('CI', '')})"


@pytest.fixture
def in_ci() -> bool:
    """True when running under CI (missing tools are failures, not skips)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
