"""Tests of ketamine_cbf.receptors.correlations: group maps vs PET maps, naive and null p, FDR."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketamine_cbf import stattools
from ketamine_cbf.receptors import correlations, nulls


def test_correlation_table_against_scipy_neuromaps_statsmodels(group_analysis, study):
    from neuromaps.stats import compare_images
    from statsmodels.stats.multitest import multipletests

    t, g, pet = group_analysis["table"], group_analysis["group"], study["pet"]
    assert list(t.columns) == correlations.TABLE_COLUMNS
    for method, fn, metric in (("spearman", stats.spearmanr, "spearmanr"), ("pearson", stats.pearsonr, "pearsonr")):
        naive = t[(t.method == method) & (t.null_model == "naive") & (t.contrast == "interaction")]
        for _, row in naive.iterrows():
            r, p = fn(g["interaction"], pet[row.receptor])
            assert row.r == pytest.approx(r, abs=1e-10)
            assert row.p == pytest.approx(p, rel=1e-6)
        np.testing.assert_allclose(naive.p_fdr, multipletests(naive.p, method="fdr_bh")[1])
        vg = t[(t.method == method) & (t.null_model == "variogram") & (t.contrast == "interaction")]
        nm = group_analysis["nulls"][("interaction", "variogram")]
        given = nulls.rank_rows(nm) if method == "spearman" else nm
        for _, row in vg.iterrows():
            _, p_ref = compare_images(g["interaction"].to_numpy(), pet[row.receptor].to_numpy(),
                                      metric=metric, nulls=given.T, ignore_zero=False)
            assert row.p == pytest.approx(p_ref, abs=1e-12)
    summ = correlations.null_correlation_table(group_analysis["null_r"], list(pet.columns))
    assert len(summ) == 2 * 2 * 2 * 6 and (summ.q97_5 > summ.q2_5).all()


def test_fdr_is_the_shared_bh_with_the_old_q_values(group_analysis):
    """Merged twin: p_fdr is stattools.fdr's q, equal to the old scipy BH, and significant its reject."""
    t = group_analysis["table"]
    for _, fam in t.groupby(["contrast", "method", "null_model"]):
        reject, q = stattools.fdr(fam.p.to_numpy(), 0.05)
        np.testing.assert_array_equal(fam.p_fdr.to_numpy(), q)
        np.testing.assert_array_equal(fam.significant.to_numpy(), reject)
        np.testing.assert_allclose(fam.p_fdr, stats.false_discovery_control(fam.p.to_numpy(), method="bh"),
                                   rtol=1e-14)


def test_fdr_alpha_sets_the_significant_column(group_analysis, study):
    g, pet, gn = group_analysis["group"], study["pet"], group_analysis["nulls"]
    strict = correlations.correlation_table(g, pet, gn, methods=["spearman"], fdr_alpha=1e-4)
    assert not strict[strict.null_model != "naive"].significant.any()  # null p >= 1/1001
    loose = correlations.correlation_table(g, pet, gn, methods=["spearman"], fdr_alpha=1.0)
    assert loose.significant.all()


def test_summary_table_and_significant_pairs(group_analysis):
    t = group_analysis["table"]
    s = correlations.summary_table(t, "spearman")
    assert list(s.columns) == ["contrast", "receptor", "p_fdr_naive", "p_fdr_variogram", "p_fdr_moran",
                               "r (spearman)"]
    primary = t[t.method == "spearman"]
    for model in ("naive", "variogram", "moran"):
        expected = primary[primary.null_model == model].set_index(["contrast", "receptor"])["p_fdr"]
        got = s.set_index(["contrast", "receptor"])[f"p_fdr_{model}"]
        pd.testing.assert_series_equal(got, expected, check_names=False)
    pairs = correlations.significant_pairs(t, "spearman", among=("interaction",))
    sig = primary[(primary.null_model != "naive") & (primary.contrast == "interaction") & primary.significant]
    assert set(pairs) == set(zip(sig.contrast, sig.receptor)) and len(pairs) > 0
    assert correlations.significant_pairs(t, "spearman", among=()) == []
