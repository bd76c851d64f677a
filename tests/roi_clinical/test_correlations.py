"""Per-arm brain-behaviour correlations (ketamine_cbf.roi_clinical.correlations)."""

import zlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketamine_cbf import stattools
from ketamine_cbf.errors import InputError
from ketamine_cbf.roi_clinical import _utils, correlations


def test_correlations_match_scipy_and_fdr_matches_pingouin(make_measures):
    import pingouin as pg

    m = make_measures(n=25, seed=3)
    m.loc[m.index[0], "psi_delusional_thinking"] = np.nan  # sub-01 placebo missing
    corr = correlations.brain_behaviour_correlations(
        m, [("pgACC_delta", "psi_delusional_thinking")], n_boot=500, seed=1)
    for row in corr.itertuples():
        d = m[m["arm"] == row.arm].dropna()
        ref = (stats.pearsonr if row.method == "pearson" else stats.spearmanr)(
            d["pgACC_delta"], d["psi_delusional_thinking"])
        assert row.r == pytest.approx(ref[0], abs=1e-10)
        assert row.p == pytest.approx(ref[1], rel=1e-6)
        assert row.ci_low < row.r < row.ci_high
        assert row.n == len(d)
    placebo = corr[corr["arm"] == "placebo"]
    assert (placebo["excluded"] == "sub-01").all() and (placebo["n"] == 24).all()
    for method, g in corr.groupby("method"):
        _, q = pg.multicomp(g["p"].to_numpy(), method="fdr_bh")
        assert np.allclose(g["q_fdr"], q)
    again = correlations.brain_behaviour_correlations(
        m, [("pgACC_delta", "psi_delusional_thinking")], n_boot=500, seed=1)
    pd.testing.assert_frame_equal(corr, again)
    with pytest.raises(InputError, match="no column 'sgACC_baseline'"):
        correlations.brain_behaviour_correlations(m, [("sgACC_baseline", "psi_delusional_thinking")])
    with pytest.raises(InputError, match="correlation method must be"):
        correlations.brain_behaviour_correlations(m, methods=("kendall",),
                                                  pairs=[("pgACC_delta", "psi_delusional_thinking")])
    excluded = correlations.excluded_by_test(corr)
    assert set(excluded["arm"]) == {"placebo"} and (excluded["excluded"] == "sub-01").all()


def test_bootstrap_ci_with_tied_small_samples_is_defined():
    x = np.array([1, 1, 1, 2, 2, 3, 1, 2], float)
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1], float)
    lo, hi = correlations.bootstrap_corr_ci(x, y, "pearson", n_boot=500, rng=0)
    r = np.corrcoef(x, y)[0, 1]
    assert np.isfinite([lo, hi]).all() and lo <= r <= hi


def test_bootstrap_ci_coverage(bivariate):
    """BCa intervals of Pearson r cover the true rho about 95% of the time."""
    rng = np.random.default_rng(11)
    hits = 0
    reps = 150
    for k in range(reps):
        x, y = bivariate(30, 0.5, rng)
        lo, hi = correlations.bootstrap_corr_ci(x, y, "pearson", n_boot=1000, rng=k)
        hits += lo <= 0.5 <= hi
    assert 0.88 <= hits / reps <= 0.995


# ------------------------------------------------------------------ merged twins
def test_stage_stream_equals_the_old_rng_for():
    """``_rng_for(seed, *keys)`` was default_rng([seed, 4, *ints]) with strings as CRC-32;
    the stage now draws stattools.rng(seed, 4, *keys): the same numbers."""
    for seed, keys in ((20261126, (1, "pearson", "pgACC_delta", "psi_delusional_thinking", "placebo")),
                       (0, (3, "spearman", "sgACC_baseline", "madrs_improvement")), (7, (2,))):
        ints = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]
        old = np.random.default_rng([int(seed), 4, *ints]).random(8)
        assert np.array_equal(_utils.stream(seed, *keys).random(8), old)
        assert np.array_equal(stattools.rng(seed, 4, *keys).random(8), old)


def test_bootstrap_ci_of_a_test_uses_its_own_stream(make_measures):
    m = make_measures(n=20, seed=5)
    pair = ("pgACC_delta", "psi_delusional_thinking")
    corr = correlations.brain_behaviour_correlations(m, [pair], methods=("pearson",), n_boot=300, seed=3)
    d = m[m["arm"] == "naltrexone"]
    ref = correlations.bootstrap_corr_ci(d[pair[0]], d[pair[1]], "pearson", 300, 0.95,
                                         stattools.rng(3, 4, 1, "pearson", *pair, "naltrexone"))
    row = corr[corr["arm"] == "naltrexone"].iloc[0]
    assert (row["ci_low"], row["ci_high"]) == ref


def test_fdr_is_stattools_fdr_per_method(make_measures):
    """Twin merged: q values are stattools.fdr (statsmodels BH, NaN ignored) within each method."""
    m = make_measures(n=12, seed=2)
    pairs = [("pgACC_delta", "psi_delusional_thinking"), ("psi_delusional_thinking", "pgACC_delta")]
    corr = correlations.brain_behaviour_correlations(m, pairs, n_boot=0, fdr_alpha=0.2)
    for _, g in corr.groupby("method"):
        reject, q = stattools.fdr(g["p"], 0.2)
        assert np.array_equal(g["q_fdr"].to_numpy(), q, equal_nan=True)
        assert g["significant_fdr"].tolist() == reject.tolist()


def test_sensitivity_uses_the_other_brain_measure(make_roi_values):
    rv = make_roi_values(n=10, seed=4, rois_=("pgACC",))
    sessions = rv[["participant_id", "session_id", "arm"]].drop_duplicates()
    rng = np.random.default_rng(0)
    phen = sessions.assign(psi_delusional_thinking=rng.normal(size=len(sessions)))
    pair = [("pgACC_delta", "psi_delusional_thinking")]
    other, corr = correlations.sensitivity_correlations(rv, phen, "ratio", pair, n_boot=0)
    assert other == "cbf" and set(corr["method"]) == {"pearson"}
    from ketamine_cbf.roi_clinical.phenotype import subject_measures

    ms, _ = subject_measures(rv, phen, value="cbf")
    ref = correlations.brain_behaviour_correlations(ms, pair, methods=("pearson",), n_boot=0)
    pd.testing.assert_frame_equal(corr, ref)
    assert correlations.sensitivity_correlations(rv, phen, "none", pair, n_boot=0)[0] == "rcbf"
