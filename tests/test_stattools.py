"""The shared statistics (ketamine_cbf.stattools), each against an independent reference."""

import zlib

import numpy as np
import pytest
from scipy import stats

from ketamine_cbf import stattools
from ketamine_cbf.errors import InputError, UsageError


def _bh_by_hand(p):
    """Benjamini-Hochberg step-up written out from the 1995 paper (independent of statsmodels)."""
    p = np.asarray(p, float)
    m = len(p)
    order = np.argsort(p)
    q = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    return q


def test_fdr_matches_the_step_up_procedure_and_scipy():
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(0, 1, 40), rng.uniform(0, 0.01, 10)])
    reject, q = stattools.fdr(p, alpha=0.05)
    np.testing.assert_allclose(q, _bh_by_hand(p), rtol=1e-12)
    np.testing.assert_allclose(q, stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    assert (reject == (q <= 0.05)).all()


def test_fdr_ignores_nan_in_the_family_size():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    reject, q = stattools.fdr(p)
    assert np.isnan(q[1]) and not reject[1]
    np.testing.assert_allclose(q[[0, 2, 3]], _bh_by_hand([0.01, 0.04, 0.03]))


def test_rng_equals_numpy_default_rng_for_integer_keys():
    a = stattools.rng(20261126, 4, 7).random(5)
    b = np.random.default_rng([20261126, 4, 7]).random(5)
    np.testing.assert_array_equal(a, b)


def test_rng_hashes_each_string_key_on_its_own():
    # the old stage-5 derivation spelled strings out byte by byte, so ("ab", "c") == ("a", "bc")
    a = stattools.rng(1, 5, "ab", "c").random(3)
    b = stattools.rng(1, 5, "a", "bc").random(3)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(
        stattools.rng(1, 4, "pearson").random(3),
        np.random.default_rng([1, 4, zlib.crc32(b"pearson")]).random(3))


def test_int_seed_reproduces_the_stage_seeds_of_version_1():
    seed = 20261126
    # stage 2's ANTs seed and stage 3's nilearn random_state, as written in version 1
    assert stattools.int_seed(seed, 2) == int(np.random.default_rng([seed, 2]).integers(1, 2**31 - 1))
    assert stattools.int_seed(seed, 3, 1, high=2**31 - 2) == int(
        np.random.default_rng([seed, 3, 1]).integers(1, 2**31 - 2))
    assert 1 <= stattools.int_seed(0) < 2**31 - 1


def test_negative_seed_keys_are_refused():
    with pytest.raises(UsageError):
        stattools.rng(1, -3)


def test_fisher_ci_matches_pingouin():
    import pingouin as pg

    for r, n in [(0.56, 26), (-0.2, 40), (0.0, 10)]:
        lo, hi = stattools.fisher_ci(r, n, 0.95)
        ref = pg.compute_esci(stat=r, nx=n, eftype="r", confidence=0.95, decimals=10)
        np.testing.assert_allclose([lo, hi], ref, atol=1e-8)


def test_fisher_ci_covers_the_true_correlation_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    rho, n, hits = 0.5, 30, 0
    cov = [[1, rho], [rho, 1]]
    for _ in range(2000):
        x = rng.multivariate_normal([0, 0], cov, n)
        lo, hi = stattools.fisher_ci(np.corrcoef(x.T)[0, 1], n)
        hits += lo <= rho <= hi
    assert 0.93 <= hits / 2000 <= 0.97


def test_monte_carlo_p_counts_as_extreme_with_the_plus_one():
    null = np.array([[0.5, 1.0], [-2.5, 0.1], [1.0, 3.0], [3.0, -4.0]])
    obs = np.array([2.0, 3.0])
    p = stattools.monte_carlo_p(obs, null)
    brute = [(1 + np.sum(np.abs(null[:, j]) >= abs(obs[j]))) / 5 for j in range(2)]
    np.testing.assert_allclose(p, brute)
    assert stattools.monte_carlo_p(2.0, null[:, 0], "greater") == (1 + 1) / 5
    with pytest.raises(UsageError):
        stattools.monte_carlo_p(1.0, null[:, 0], "less")
    with pytest.raises(InputError):
        stattools.monte_carlo_p(obs, null[:, 0])
