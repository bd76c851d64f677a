"""Equality with nilearn: the drop-in front ends, and the stage's own path against nilearn."""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.mass_univariate import permuted_ols

from ketamine_cbf.errors import UsageError
from ketamine_cbf.voxelwise.nilearn_compat import (
    compare_with_nilearn,
    non_parametric_inference,
    permuted_ols_one_sample,
)


def _nilearn(Y, conf, masker, two_sided, n_perm=30, n_jobs=1, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return permuted_ols(np.ones((Y.shape[0], 1)), Y, confounding_vars=conf, n_perm=n_perm,
                            two_sided_test=two_sided, random_state=11, n_jobs=n_jobs,
                            masker=masker, **kw)


@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("with_confounds", [False, True])
def test_permuted_ols_equals_nilearn(grid, smooth_data, two_sided, with_confounds):
    mask, _, masker, nb = grid
    rng = np.random.default_rng(1)
    Y = smooth_data(rng, mask)
    conf = rng.standard_normal((Y.shape[0], 2)) if with_confounds else None
    ref = _nilearn(Y, conf, masker, two_sided, tfce=True, threshold=0.01)
    ours = permuted_ols_one_sample(Y, conf, n_perm=30, two_sided_test=two_sided, random_state=11,
                                   neighbours=nb, tfce=True, threshold=0.01)
    assert set(ref) == set(ours)
    for key in ref:
        a, b = np.asarray(ref[key], float), np.asarray(ours[key], float)
        assert a.shape == b.shape, key
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-8, err_msg=key)
    # the comparison is informative: many distinct p-values, not all at a bound
    for key in ("logp_max_t", "logp_max_tfce"):
        assert np.unique(np.round(np.asarray(ours[key]), 12)).size > 3, key


@pytest.mark.parametrize("n_jobs", [1, 2, 4])
def test_sign_flips_reproduce_nilearn_chunking(grid, smooth_data, n_jobs):
    """Same random_state and n_jobs -> the same null distribution as nilearn (max-T only)."""
    mask, _, masker, _ = grid
    Y = smooth_data(np.random.default_rng(2), mask)
    ref = _nilearn(Y, None, masker, True, n_perm=25, n_jobs=n_jobs)
    ours = permuted_ols_one_sample(Y, n_perm=25, two_sided_test=True, random_state=11, n_jobs=n_jobs)
    np.testing.assert_allclose(ours["h0_max_t"], ref["h0_max_t"], rtol=1e-12)
    np.testing.assert_array_equal(ours["logp_max_t"], ref["logp_max_t"])


def test_constant_confounds_are_dropped_with_nilearns_warning(grid, smooth_data):
    mask, _, _, _ = grid
    Y = smooth_data(np.random.default_rng(3), mask)
    conf = np.c_[np.ones(Y.shape[0]), np.linspace(-1, 1, Y.shape[0])]
    with pytest.warns(UserWarning, match="constant"):
        a = permuted_ols_one_sample(Y, conf, n_perm=5, random_state=1)
    b = permuted_ols_one_sample(Y, conf[:, 1:], n_perm=5, random_state=1)
    np.testing.assert_array_equal(a["t"], b["t"])
    with pytest.raises(UsageError, match="2D"):
        permuted_ols_one_sample(Y[0])


def test_image_level_equals_nilearn(grid, smooth_data):
    from nilearn.glm.second_level import non_parametric_inference as nl_npi

    mask, aff, _, _ = grid
    Y = smooth_data(np.random.default_rng(4), mask, n=10)
    imgs = []
    for row in Y:
        vol = np.zeros(mask.shape)
        vol[mask] = row
        imgs.append(nib.Nifti1Image(vol, aff))
    mimg = nib.Nifti1Image(mask.astype(np.uint8), aff)
    design = pd.DataFrame({"intercept": np.ones(10), "age": np.linspace(-1, 1, 10) ** 2})
    kw = dict(design_matrix=design, second_level_contrast="intercept", mask=mimg, n_perm=20,
              two_sided_test=True, random_state=5, tfce=True, threshold=0.005)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nl_npi(imgs, **kw)
    ours = non_parametric_inference(imgs, **kw)
    assert set(ref) == set(ours)
    for key in ref:
        np.testing.assert_allclose(ours[key].get_fdata(), ref[key].get_fdata(), rtol=1e-9,
                                   atol=1e-8, err_msg=key)
    # without tfce/threshold both return the max-T -log10 p image alone
    kw.update(tfce=False, threshold=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref1 = nl_npi(imgs, **kw)
    np.testing.assert_allclose(non_parametric_inference(imgs, **kw).get_fdata(), ref1.get_fdata())


def test_image_level_rejects_what_it_does_not_support(grid):
    mask, aff, _, _ = grid
    imgs = [nib.Nifti1Image(np.random.default_rng(i).standard_normal(mask.shape), aff) for i in range(5)]
    design = pd.DataFrame({"age": np.arange(5.0)})
    with pytest.raises(UsageError, match="one-sample"):
        non_parametric_inference(imgs, design_matrix=design, n_perm=5)
    with pytest.raises(UsageError, match="at least 1"):
        non_parametric_inference(imgs, n_perm=0)
    with pytest.raises(UsageError, match="first-level"):
        non_parametric_inference(imgs, confounds=pd.DataFrame({"a": [1]}))
    with pytest.raises(UsageError, match="two images"):
        non_parametric_inference(imgs[:1])
    with pytest.raises(UsageError, match="not a design column"):
        non_parametric_inference(imgs, design_matrix=design, second_level_contrast="intercept")


def test_stage_inference_equals_nilearn(study):
    """The stage's own path (group_inference) against nilearn, same flips: rounding only."""
    _, table, mask, _ = study
    rows = table[table.contrast == "ket_pooled"]
    check = compare_with_nilearn(rows, mask, "ket_pooled", nilearn_check_perm=4, seed=4,
                                 covariates=["order"])
    d = check.set_index("map")
    assert set(d.index) >= {"t", "tfce", "logp_max_t", "logp_max_tfce", "size", "mass"}
    assert (d.loc[["t", "tfce", "mass"], "max_rel_diff"] < 1e-9).all()
    assert (d.loc[["logp_max_t", "logp_max_tfce", "size"], "max_abs_diff"] == 0).all()
