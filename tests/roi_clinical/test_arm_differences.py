"""Between-arm tests of the correlations (ketamine_cbf.roi_clinical.arm_differences)."""

import itertools
import zlib

import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.roi_clinical import arm_differences
from ketamine_cbf.roi_clinical._utils import zscore
from ketamine_cbf.stattools import fisher_ci


# ------------------------------------------------------------------ Zou (2007) against cocor
def test_zou_nonoverlap_matches_cocor():
    # cocor's test suite (Diedenhofen & Musch 2015), Zou (2007) example: CI (-.096, .501)
    lo, hi = arm_differences.zou_ci_nonoverlap(r12=.396, r34=.189, r13=.208, r14=.143, r23=.023, r24=.423, n=66)
    assert (round(lo, 3), round(hi, 3)) == (-0.096, 0.501)


def test_zou_overlap_matches_cocor():
    # cocor.dep.groups.overlap(.396, .179, .088, 66, "zou2007") -> (-.093, .517)
    lo, hi = arm_differences.zou_ci_overlap(r12=.396, r13=.179, r23=.088, n=66)
    assert (round(lo, 3), round(hi, 3)) == (-0.093, 0.517)


def test_zou_reduces_to_independent_case_and_is_antisymmetric():
    # with all cross-correlations 0, c = 0: Zou's independent-groups interval
    lo, hi = arm_differences.zou_ci_nonoverlap(0.6, 0.1, 0, 0, 0, 0, n=40)
    l1, u1 = fisher_ci(0.6, 40)
    l2, u2 = fisher_ci(0.1, 40)
    assert lo == pytest.approx(0.5 - np.sqrt((0.6 - l1) ** 2 + (u2 - 0.1) ** 2))
    assert hi == pytest.approx(0.5 + np.sqrt((u1 - 0.6) ** 2 + (0.1 - l2) ** 2))
    lo2, hi2 = arm_differences.zou_ci_nonoverlap(0.1, 0.6, 0.3, 0.2, 0.25, 0.4, n=40)
    lo3, hi3 = arm_differences.zou_ci_nonoverlap(0.6, 0.1, 0.3, 0.25, 0.2, 0.4, n=40)
    assert (lo2, hi2) == pytest.approx((-hi3, -lo3))


def test_fisher_ci_is_the_old_stage_formula():
    """Twin merged: the stage's Fisher-z CI is stattools.fisher_ci (same numbers)."""
    from scipy import stats

    for r, n, ci in ((0.56, 26, 0.95), (-0.3, 12, 0.9), (0.99999999, 40, 0.95)):
        z = np.arctanh(np.clip(r, -0.9999999, 0.9999999))
        h = stats.norm.ppf(0.5 + ci / 2) / np.sqrt(n - 3)
        assert fisher_ci(r, n, ci) == (float(np.tanh(z - h)), float(np.tanh(z + h)))


# ------------------------------------------------------------------ permutation test
def test_permutation_exact_matches_brute_force(bivariate):
    rng = np.random.default_rng(5)
    xa, ya = bivariate(8, 0.8, rng)
    xb, yb = bivariate(8, 0.0, rng)
    res = arm_differences.permutation_arm_difference(xa, ya, xb, yb, n_arm_swaps=5000)
    assert res["exact"] and res["n_arm_swaps"] == 2 ** 8
    z = [zscore(v) for v in (xa, ya, xb, yb)]
    obs = np.corrcoef(z[0], z[1])[0, 1] - np.corrcoef(z[2], z[3])[0, 1]
    count = 0
    for swap in itertools.product([False, True], repeat=8):
        s = np.array(swap)
        pa = np.where(s, z[2], z[0]), np.where(s, z[3], z[1])
        pb = np.where(s, z[0], z[2]), np.where(s, z[1], z[3])
        d = np.corrcoef(*pa)[0, 1] - np.corrcoef(*pb)[0, 1]
        count += abs(d) >= abs(obs) - 1e-12
    assert res["diff"] == pytest.approx(obs)
    assert res["p"] == pytest.approx(count / 256)


def test_permutation_false_positive_rate_and_power(bivariate):
    rng = np.random.default_rng(21)
    ps = []
    for k in range(200):  # null: same rho in both arms, arms differ in mean and spread
        xa, ya = bivariate(20, 0.4, rng)
        xb, yb = bivariate(20, 0.4, rng)
        ps.append(arm_differences.permutation_arm_difference(xa, ya, 3 * xb + 10, yb - 5, n_arm_swaps=500,
                                                             rng=k)["p"])
    assert np.mean(np.array(ps) < 0.05) <= 0.09
    xa, ya = bivariate(40, 0.85, rng)
    xb, yb = bivariate(40, 0.0, rng)
    assert arm_differences.permutation_arm_difference(xa, ya, xb, yb, n_arm_swaps=2000, rng=1)["p"] < 0.01


def test_random_swaps_use_the_seed_as_numpy_default_rng_did(bivariate):
    """An integer ``rng`` seeds the same swaps as np.random.default_rng(int) used to."""
    rng = np.random.default_rng(3)
    xa, ya = bivariate(40, 0.5, rng)
    xb, yb = bivariate(40, 0.2, rng)
    res = arm_differences.permutation_arm_difference(xa, ya, xb, yb, n_arm_swaps=300, rng=7)
    z = [zscore(v) for v in (xa, ya, xb, yb)]
    swap = np.random.default_rng(7).random((300, 40)) < 0.5
    pa = np.where(swap, z[2], z[0]), np.where(swap, z[3], z[1])
    pb = np.where(swap, z[0], z[2]), np.where(swap, z[1], z[3])
    null = np.array([np.corrcoef(pa[0][k], pa[1][k])[0, 1] - np.corrcoef(pb[0][k], pb[1][k])[0, 1]
                     for k in range(300)])
    b = np.sum(np.abs(null) >= abs(res["diff"]) - 1e-12)
    assert not res["exact"] and res["p"] == pytest.approx((1 + b) / 301)


# ------------------------------------------------------------------ compare_arms
def test_compare_arms_pairs_subjects_by_id(make_measures):
    m = make_measures(n=30, rho=(0.8, 0.0), seed=4)
    m = m[~((m["participant_id"] == "sub-03") & (m["arm"] == "naltrexone"))]  # one arm missing
    d1 = arm_differences.compare_arms(m, [("pgACC_delta", "psi_delusional_thinking")], n_arm_swaps=1000,
                                      n_boot=500, seed=2)
    shuffled = m.sample(frac=1.0, random_state=7)
    d2 = arm_differences.compare_arms(shuffled, [("pgACC_delta", "psi_delusional_thinking")], n_arm_swaps=1000,
                                      n_boot=500, seed=2)
    pd.testing.assert_frame_equal(d1, d2)
    assert (d1["n_paired"] == 29).all() and (d1["excluded"] == "sub-03").all()
    p = d1[d1["method"] == "pearson"].iloc[0]
    assert p["zou_ci_low"] < p["diff"] < p["zou_ci_high"]
    assert p["boot_ci_low"] < p["diff"] < p["boot_ci_high"]
    assert p["zou_ci_low"] > 0 and p["p_perm"] < 0.01  # planted 0.8 vs 0.0


def test_compare_arms_streams_are_the_old_derivation(make_measures):
    """Twin merged: the arm-swap stream of a pair is stattools.rng(seed, 4, 2, method, x, y),
    the numbers the stage's own ``_rng_for`` drew (default_rng([seed, 4, 2, crc32(...)]))."""
    m = make_measures(n=40, rho=(0.5, 0.1), seed=9)  # 2**40 > n_arm_swaps: random swaps
    pair = ("pgACC_delta", "psi_delusional_thinking")
    d = arm_differences.compare_arms(m, [pair], methods=("pearson",), n_arm_swaps=400, n_boot=0, seed=11)
    w = m.pivot_table(index="participant_id", columns="arm", values=list(pair), aggfunc="first")
    cols = [(pair[0], "placebo"), (pair[1], "placebo"), (pair[0], "naltrexone"), (pair[1], "naltrexone")]
    old = np.random.default_rng([11, 4, 2, *(zlib.crc32(s.encode()) for s in ("pearson", *pair))])
    ref = arm_differences.permutation_arm_difference(*(w[c].to_numpy(float) for c in cols), "pearson", 400, old)
    assert d["p_perm"].iloc[0] == ref["p"] and d["diff"].iloc[0] == ref["diff"]


def test_compare_arms_n_arm_swaps_default_is_the_notebooks():
    import inspect

    assert inspect.signature(arm_differences.compare_arms).parameters["n_arm_swaps"].default == 5000
    assert "n_perm" not in inspect.signature(arm_differences.permutation_arm_difference).parameters
