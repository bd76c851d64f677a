"""The sign-flip test engine: exactness, t statistic, p-value rules, determinism, inputs."""

import numpy as np
import pytest
from scipy import stats

from ketamine_cbf.errors import UsageError
from ketamine_cbf.voxelwise.permutation import (
    cluster_fwe_logp,
    cluster_measures,
    cluster_threshold_t,
    fwe_logp,
    one_sample_t,
    sign_flip_test,
)
from ketamine_cbf.voxelwise.signflips import draw_sign_flips, exhaustive_sign_flips


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
    res = sign_flip_test(Y, flips, two_sided=True, tfce=False)
    all_flips = np.vstack([np.ones((1, n)), flips])
    maxes = np.array([np.abs(stats.ttest_1samp(s[:, None] * Y, 0).statistic).max() for s in all_flips])
    t_obs = np.abs(stats.ttest_1samp(Y, 0).statistic)
    p_exact = np.array([(maxes >= t - 1e-12).mean() for t in t_obs])
    np.testing.assert_allclose(10 ** -res["logp_max_t"], p_exact, rtol=1e-12)


def test_p_value_conventions():
    h0 = np.array([1.0, 2.0, 3.0, 4.0])
    # (1 + #{h0 >= x}) / (n + 1)
    np.testing.assert_allclose(10 ** -fwe_logp(np.array([0.5, 2.0, 4.5, np.nan]), h0),
                               [1.0, 4 / 5, 1 / 5, 1.0])
    np.testing.assert_allclose(10 ** -cluster_fwe_logp(np.array([0.0, 2.0, 9.0]), h0),
                               [1.0, 4 / 5, 1 / 5])
    np.testing.assert_allclose(10 ** -cluster_fwe_logp(np.array([0.0, 2.0, 9.0]), h0, "nilearn"),
                               [0.75, 0.75, 0.25])
    with pytest.raises(UsageError, match="convention"):
        cluster_fwe_logp(np.array([1.0]), h0, "fsl")


def test_cluster_threshold_and_measures(grid, smooth_data):
    assert cluster_threshold_t(0.01, 20, two_sided=True) == pytest.approx(stats.t.isf(0.005, 20))
    assert cluster_threshold_t(0.01, 20, two_sided=False) == pytest.approx(stats.t.isf(0.01, 20))
    with pytest.raises(UsageError, match="p-value"):
        cluster_threshold_t(3.0, 20)
    mask, _, _, nb = grid
    t = one_sample_t(smooth_data(np.random.default_rng(3), mask))
    labels, size, mass = cluster_measures(t, nb, 2.0)
    assert labels.max() >= 2
    for c in range(1, labels.max() + 1):  # every voxel carries its cluster's extent and mass
        members = labels == c
        assert (size[members] == members.sum()).all()
        np.testing.assert_allclose(mass[members], np.sum(np.abs(t[members]) - 2.0))
    assert (size[labels == 0] == 0).all() and (mass[labels == 0] == 0).all()


def test_results_do_not_depend_on_threads_or_blocks(grid, smooth_data):
    mask, _, _, nb = grid
    Y = smooth_data(np.random.default_rng(9), mask)
    flips = draw_sign_flips(Y.shape[0], 40, random_state=1)
    a = sign_flip_test(Y, flips, nb, tfce=True, cluster_threshold=2.5, n_threads=1)
    b = sign_flip_test(Y, flips, nb, tfce=True, cluster_threshold=2.5, n_threads=2)
    for key in a:  # bitwise: each permutation is computed whole by one thread
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # blocks of 3 permutations: the matrix products round differently (last ulp) only
    c = sign_flip_test(Y, flips, nb, tfce=True, cluster_threshold=2.5, block_bytes=8.0 * Y.shape[1] * 3)
    for key in a:
        np.testing.assert_allclose(c[key], a[key], rtol=1e-12, err_msg=key)


def test_progress_bar_over_blocks_changes_no_number(grid, smooth_data, monkeypatch):
    """The permutation-block loop runs through ketamine_cbf.progress: on or off, same bytes."""
    from ketamine_cbf import progress as progress_module

    mask, _, _, nb = grid
    Y = smooth_data(np.random.default_rng(5), mask)
    flips = draw_sign_flips(Y.shape[0], 30, random_state=2)
    blocks = dict(block_bytes=8.0 * Y.shape[1] * 2 * 7)  # 7 flips per block (one covariate)
    seen = []

    def counting(iterable, desc, total=None, unit="it", enabled=None):
        seen.append((desc, total, unit))
        return iterable

    z = np.linspace(-1, 1, Y.shape[0])[:, None]
    off = sign_flip_test(Y, flips, nb, confounds=z, cluster_threshold=2.0, **blocks)
    monkeypatch.setattr("ketamine_cbf.voxelwise.permutation.progress", counting)
    on = sign_flip_test(Y, flips, nb, confounds=z, cluster_threshold=2.0, progress_label="x", **blocks)
    assert seen == [("[03_voxelwise] x", 5, "block")]
    for key in off:
        np.testing.assert_array_equal(on[key], off[key], err_msg=key)
    monkeypatch.setenv(progress_module.ENV, "1")  # a real tqdm bar (to the terminal's stderr)
    monkeypatch.setattr("ketamine_cbf.voxelwise.permutation.progress", progress_module.progress)
    bar = sign_flip_test(Y, flips, nb, confounds=z, cluster_threshold=2.0, **blocks)
    for key in off:
        np.testing.assert_array_equal(bar[key], off[key], err_msg=key)


def test_no_flips_gives_the_statistic_maps_only(grid, smooth_data):
    mask, _, _, nb = grid
    Y = smooth_data(np.random.default_rng(6), mask)
    res = sign_flip_test(Y, np.ones((0, Y.shape[0])), nb, cluster_threshold=2.0)
    assert set(res) == {"t", "tfce", "size", "mass"}
    np.testing.assert_allclose(res["t"], one_sample_t(Y))


def test_bad_inputs_raise_usage_errors(grid):
    _, _, _, nb = grid
    Y = np.ones((4, nb.shape[0]))
    with pytest.raises(UsageError, match="2-D"):
        sign_flip_test(Y[0], np.ones((3, 4)), tfce=False)
    with pytest.raises(UsageError, match="signs"):
        sign_flip_test(Y, np.ones((3, 5)), tfce=False)
    with pytest.raises(UsageError, match="\\+1 and -1"):
        sign_flip_test(Y, np.zeros((3, 4)), tfce=False)
    with pytest.raises(UsageError, match="neighbour"):
        sign_flip_test(Y, np.ones((3, 4)))  # TFCE (the default) needs the neighbour table
    with pytest.raises(UsageError, match="rows"):
        sign_flip_test(Y, np.ones((3, 4)), nb[:-1])
