"""Claims tables and sentences, published values (ketamine_cbf.roi_clinical.claims)."""

import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.roi_clinical import arm_differences, claims, correlations


def test_published_comparison_and_claims(make_measures):
    m = make_measures(n=26, rho=(0.6, 0.0), seed=8)
    corr = correlations.brain_behaviour_correlations(m, [("pgACC_delta", "psi_delusional_thinking")], n_boot=500,
                                                     seed=0)
    diff = arm_differences.compare_arms(m, [("pgACC_delta", "psi_delusional_thinking")], n_arm_swaps=500,
                                        n_boot=500, seed=0)
    pub = claims.published_comparison(corr, diff, data_label="simulated")
    row = pub[pub["test"] == "pgACC_delta ~ psi_delusional_thinking"].iloc[0]
    assert row["published_r"] == 0.56 and row["data"] == "simulated"
    lo, hi = np.tanh(np.arctanh(0.56) + np.array([-1, 1]) * 1.959964 / np.sqrt(23))
    assert row["published_ci95_fisher"].startswith(f"[{lo:.2f}, {hi:.2f}]")
    assert row["our_r"] == pytest.approx(corr.query("method == 'pearson' and arm == 'placebo'")["r"].iloc[0])
    assert row["our_r_naltrexone"] == corr.query("method == 'pearson' and arm == 'naltrexone'")["r"].iloc[0]
    assert row["arm_difference"] == diff.query("method == 'pearson'")["diff"].iloc[0]
    table = claims.claims_table(corr, diff)
    text = claims.describe_claims(table)
    assert len(text) == 1 and "Zou 95% CI" in text[0]


def test_published_table_is_built_from_study():
    """Twin merged: the published r come from study.PUBLISHED_CORRELATIONS, the p texts stay
    here; the table equals the stage's former literal one."""
    old = pd.DataFrame([
        {"x": "pgACC_delta", "y": "psi_delusional_thinking", "arm": "placebo",
         "published_r": 0.56, "published_p": "0.004"},
        {"x": "pgACC_delta", "y": "psi_perceptual_distortion", "arm": "placebo",
         "published_r": 0.64, "published_p": "< 0.001"},
        {"x": "sgACC_baseline", "y": "madrs_improvement", "arm": "placebo",
         "published_r": 0.60, "published_p": "0.002"},
        {"x": "sgACC_baseline", "y": "qids_sr_improvement", "arm": "placebo",
         "published_r": 0.67, "published_p": "< 0.001"},
    ])
    pd.testing.assert_frame_equal(claims.PUBLISHED, old)


def test_describe_claims_separates_per_arm_and_difference():
    table = pd.DataFrame([{"x": "a", "y": "b", "r_placebo": 0.6, "ci_placebo": "[0.2, 0.8]", "q_placebo": 0.01,
                           "r_naltrexone": 0.1, "ci_naltrexone": "[-0.3, 0.5]", "q_naltrexone": 0.6,
                           "difference": 0.5, "zou_ci": "[-0.05, 0.9]", "p_perm": 0.08, "q_difference": 0.08}])
    text = claims.describe_claims(table, fdr_alpha=0.05)[0]
    assert "under placebo (FDR-significant)" in text and "under naltrexone (not FDR-significant)" in text
    assert text.endswith("the arms are not shown to differ.")
    assert claims.describe_claims(table, fdr_alpha=0.1)[0].endswith("the arms differ.")
