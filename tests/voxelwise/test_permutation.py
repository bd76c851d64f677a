"""Sign-flip permutation inference: equality with nilearn, exactness, determinism."""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.maskers import NiftiMasker
from nilearn.mass_univariate import permuted_ols
from scipy import ndimage, stats

from ketamine_cbf.errors import UsageError
from ketamine_cbf.voxelwise.connectivity import grid_neighbours
from ketamine_cbf.voxelwise.permutation import (
    cluster_fwe_logp,
    draw_sign_flips,
    exhaustive_sign_flips,
    fwe_logp,
    nilearn_sign_flips,
    non_parametric_inference,
    one_sample_t,
    permuted_ols_one_sample,
    sign_flip_test,
)

SHAPE = (14, 16, 12)


@pytest.fixture(scope="module")
def grid():
    mask = np.zeros(SHAPE, bool)
    mask[1:-1, 1:-1, 1:-1] = True
    mask[5:8, 5:8, 1:4] = False  # a hole
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    masker = NiftiMasker(nib.Nifti1Image(mask.astype(np.uint8), aff)).fit()
    return mask, aff, masker, grid_neighbours(mask)


def _data(rng, mask, n=14, effect=0.8):
    vols = np.stack([ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.2) for _ in range(n)])
    vols /= vols.std()
    vols[:, 3:7, 8:12, 4:8] += effect  # a weak positive blob: p-values spread over (0, 1)
    vols[:, 9:12, 2:5, 6:9] -= effect  # and a negative one
    return vols[:, mask]


def _nilearn(Y, conf, masker, two_sided, n_perm=30, n_jobs=1, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return permuted_ols(np.ones((Y.shape[0], 1)), Y, confounding_vars=conf, n_perm=n_perm,
                            two_sided_test=two_sided, random_state=11, n_jobs=n_jobs,
                            masker=masker, **kw)


@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("with_confounds", [False, True])
def test_permuted_ols_equals_nilearn(grid, two_sided, with_confounds):
    mask, _, masker, nb = grid
    rng = np.random.default_rng(1)
    Y = _data(rng, mask)
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
def test_sign_flips_reproduce_nilearn_chunking(grid, n_jobs):
    """Same random_state and n_jobs -> the same null distribution as nilearn (max-T only)."""
    mask, _, masker, _ = grid
    Y = _data(np.random.default_rng(2), mask)
    ref = _nilearn(Y, None, masker, True, n_perm=25, n_jobs=n_jobs)
    ours = permuted_ols_one_sample(Y, n_perm=25, two_sided_test=True, random_state=11, n_jobs=n_jobs)
    np.testing.assert_allclose(ours["h0_max_t"], ref["h0_max_t"], rtol=1e-12)
    np.testing.assert_array_equal(ours["logp_max_t"], ref["logp_max_t"])


def test_nilearn_sign_flips_are_running_products():
    flips = nilearn_sign_flips(6, 5, random_state=3)
    rng = np.random.RandomState(3)
    chunk = np.random.RandomState(rng.randint(1, np.iinfo(np.int32).max - 1))
    draws = np.stack([chunk.randint(2, size=(6, 1))[:, 0] * 2 - 1 for _ in range(5)])
    np.testing.assert_array_equal(flips, np.cumprod(draws, axis=0))


def test_image_level_equals_nilearn(grid):
    from nilearn.glm.second_level import non_parametric_inference as nl_npi

    mask, aff, _, _ = grid
    Y = _data(np.random.default_rng(4), mask, n=10)
    imgs = []
    for row in Y:
        vol = np.zeros(SHAPE)
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


def test_image_level_rejects_regressor_tests(grid):
    mask, aff, _, _ = grid
    imgs = [nib.Nifti1Image(np.random.default_rng(i).standard_normal(SHAPE), aff) for i in range(5)]
    design = pd.DataFrame({"age": np.arange(5.0)})
    with pytest.raises(UsageError, match="one-sample"):
        non_parametric_inference(imgs, design_matrix=design, n_perm=5)


def test_one_sample_t_matches_scipy_and_statsmodels():
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    Y = rng.standard_normal((12, 30)) + 0.4
    np.testing.assert_allclose(one_sample_t(Y), stats.ttest_1samp(Y, 0).statistic, rtol=1e-10)
    z = rng.standard_normal((12, 1))
    t = one_sample_t(Y, z)
    for v in range(3):
        fit = sm.OLS(Y[:, v], np.c_[np.ones(12), z]).fit()
        assert t[v] == pytest.approx(fit.tvalues[0], rel=1e-9)


def test_exhaustive_flips_give_the_exact_permutation_p():
    """All 2^n flips: p = #{flips with max|t| >= observed} / 2^n, computed independently."""
    rng = np.random.default_rng(8)
    n, v = 7, 40
    Y = rng.standard_normal((n, v)) + np.linspace(0, 1.5, v)
    flips = exhaustive_sign_flips(n)
    assert flips.shape == (2 ** n - 1, n)
    assert len({tuple(f) for f in flips}) == 2 ** n - 1 and not (flips == 1).all(axis=1).any()
    res = sign_flip_test(Y, flips, two_sided=True)
    all_flips = np.vstack([np.ones((1, n)), flips])
    maxes = np.array([np.abs(stats.ttest_1samp(s[:, None] * Y, 0).statistic).max() for s in all_flips])
    t_obs = np.abs(stats.ttest_1samp(Y, 0).statistic)
    p_exact = np.array([(maxes >= t - 1e-12).mean() for t in t_obs])
    np.testing.assert_allclose(10 ** -res["logp_max_t"], p_exact, rtol=1e-12)
    assert draw_sign_flips(7, 200).shape == (127, 7)          # auto: exhaustive when affordable
    assert draw_sign_flips(7, 100, random_state=0).shape == (100, 7)


def test_p_value_conventions():
    h0 = np.array([1.0, 2.0, 3.0, 4.0])
    # (1 + #{h0 >= x}) / (n + 1)
    np.testing.assert_allclose(10 ** -fwe_logp(np.array([0.5, 2.0, 4.5, np.nan]), h0),
                               [1.0, 4 / 5, 1 / 5, 1.0])
    np.testing.assert_allclose(10 ** -cluster_fwe_logp(np.array([0.0, 2.0, 9.0]), h0),
                               [1.0, 4 / 5, 1 / 5])
    np.testing.assert_allclose(10 ** -cluster_fwe_logp(np.array([0.0, 2.0, 9.0]), h0, "nilearn"),
                               [0.75, 0.75, 0.25])


def test_results_do_not_depend_on_threads_or_blocks(grid):
    mask, _, _, nb = grid
    Y = _data(np.random.default_rng(9), mask)
    flips = draw_sign_flips(Y.shape[0], 40, random_state=1)
    a = sign_flip_test(Y, flips, nb, tfce=True, cluster_threshold=2.5, n_threads=1)
    b = sign_flip_test(Y, flips, nb, tfce=True, cluster_threshold=2.5, n_threads=2)
    for key in a:  # bitwise: each permutation is computed whole by one thread
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # blocks of 3 permutations: the matrix products round differently (last ulp) only
    c = sign_flip_test(Y, flips, nb, tfce=True, cluster_threshold=2.5, block_bytes=8.0 * Y.shape[1] * 3)
    for key in a:
        np.testing.assert_allclose(c[key], a[key], rtol=1e-12, err_msg=key)


def test_bad_inputs_raise_usage_errors(grid):
    _, _, _, nb = grid
    Y = np.ones((4, nb.shape[0]))
    with pytest.raises(UsageError, match="signs"):
        sign_flip_test(Y, np.ones((3, 5)))
    with pytest.raises(UsageError, match="\\+1 and -1"):
        sign_flip_test(Y, np.zeros((3, 4)))
    with pytest.raises(UsageError, match="neighbour"):
        sign_flip_test(Y, np.ones((3, 4)), tfce=True)
