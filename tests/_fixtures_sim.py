"""Session-scoped tiny simulated datasets (owner: the simulation, issue 3).

``tiny_dataset``: 8 participants, 4 mm truth grid, 6 mm native ASL voxels, 4 mm T1w;
builds in a few seconds. ``tiny_null_dataset``: the same with ``null=True`` (no
ketamine, receptor or clinical effects). Both return the dataset root (a Path) and
must be treated as read-only by tests (copy before modifying).
"""

from pathlib import Path

import pytest

from ketamine_cbf.config import load_config

#: Options and seed of the tiny variant: read from config/tiny.yml, so the fixtures and
#: the tiny pipeline always simulate the same dataset.
_TINY = load_config(Path(__file__).resolve().parents[1] / "config" / "tiny.yml")
TINY_OPTIONS = dict(_TINY.simulate)
TINY_SEED = _TINY.seed


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A tiny simulated BIDS-ASL dataset with planted effects (read-only)."""
    from ketamine_cbf.simulate import simulate_dataset

    return simulate_dataset(tmp_path_factory.mktemp("sim") / "tiny", seed=TINY_SEED,
                            **TINY_OPTIONS)


@pytest.fixture(scope="session")
def tiny_null_dataset(tmp_path_factory):
    """The tiny dataset with ``null=True``: no effects at all (read-only)."""
    from ketamine_cbf.simulate import simulate_dataset

    return simulate_dataset(tmp_path_factory.mktemp("sim") / "tiny_null", seed=TINY_SEED,
                            null=True, **TINY_OPTIONS)
