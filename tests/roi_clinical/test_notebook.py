"""The stage-4 notebook's parameters cell (defaults against signatures: tests/test_parameters.py)."""

import pytest

from ketamine_cbf.reference.paths import project_root

NOTEBOOK = project_root() / "notebooks" / "04_roi_clinical.ipynb"


@pytest.fixture(scope="module")
def params():
    import papermill as pm

    return pm.inspect_notebook(str(NOTEBOOK))


def test_notebook_parameters_are_all_declared(params):
    """Every stage-4 parameter is visible to papermill (a '=' in a comment hides it)."""
    for name in ("seed", "bids_dir", "derivatives_dir", "output_dir", "roi_definition",
                 "sphere_radius_mm", "roi_gm_threshold", "roi_masks", "atlas_labels", "cbf_map",
                 "exclude_qc_fail", "global_adjustment", "brain_behaviour_pairs", "n_boot",
                 "n_arm_swaps", "ci_level", "fdr_alpha"):
        assert name in params, name
        if name not in ("seed", "bids_dir", "derivatives_dir", "output_dir"):
            assert params[name]["help"], f"{name} has no comment"
    # one meaning per name: the old names of these parameters are gone
    assert "n_perm" not in params and "gm_threshold" not in params

