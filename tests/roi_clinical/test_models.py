"""Crossover models of ROI CBF (ketamine_cbf.roi_clinical.models)."""

import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError
from ketamine_cbf.roi_clinical import models


def test_mixedlm_interaction_equals_difference_of_changes_and_recovers_truth(make_roi_values):
    rv = make_roi_values(n=20, interaction=2.0, seed=1)
    t = models.crossover_mixedlm(rv, "pgACC").set_index("term")
    w = rv.pivot_table(index="participant_id", columns=["arm", "timepoint"], values="cbf")
    dd = (w[("naltrexone", "during")] - w[("naltrexone", "pre")]) - (w[("placebo", "during")] - w[("placebo", "pre")])
    # balanced complete data: the GLS interaction equals the mean difference of changes
    assert t.loc["naltrexone:during", "estimate"] == pytest.approx(dd.mean(), abs=1e-6)
    assert t.loc["naltrexone:during", "ci_low"] < 2.0 < t.loc["naltrexone:during", "ci_high"]
    assert t.loc["during", "ci_low"] < 5.0 < t.loc["during", "ci_high"]
    assert t.loc["during_naltrexone", "estimate"] == pytest.approx(
        t.loc["during", "estimate"] + t.loc["naltrexone:during", "estimate"])
    assert {"period2", "order_np"} <= set(t.index)
    assert bool(t["converged"].iloc[0])
    # ratio adjustment works on relative CBF (small numbers) and converges
    r = models.crossover_mixedlm(rv, "pgACC", "ratio")
    assert bool(r["converged"].iloc[0]) and r["units"].iloc[0].startswith("relative")
    with pytest.raises(InputError, match="global adjustment must be"):
        models.crossover_mixedlm(rv, "pgACC", "scaled")


def test_rm_anova_matches_statsmodels_and_reports_incomplete(make_roi_values):
    from statsmodels.stats.anova import AnovaRM

    rv = make_roi_values(n=14, seed=2)
    rv = rv[~((rv["participant_id"] == "sub-05") & (rv["run"] == "2") & (rv["arm"] == "placebo"))]
    t, excluded = models.crossover_rm_anova(rv, "pgACC")
    assert excluded == ["sub-05"]
    complete = rv[rv["participant_id"] != "sub-05"]
    ref = AnovaRM(complete, "cbf", "participant_id", within=["arm", "timepoint"]).fit().anova_table
    ours = t.set_index("Source")
    assert ours.loc["arm * timepoint", "F"] == pytest.approx(ref.loc["arm:timepoint", "F Value"], rel=1e-8)
    assert ours.loc["timepoint", "F"] == pytest.approx(ref.loc["timepoint", "F Value"], rel=1e-8)
    fits = models.crossover_models(rv, adjustments=("none", "ratio", "ancova"))
    assert set(fits["excluded"]["participant_id"]) == {"sub-05"}
    comp = fits["comparison"].set_index("adjustment")
    assert np.isnan(comp.loc["ancova", "rm_anova_interaction_F"])
    # on (nearly) balanced data the two analyses agree on the interaction
    assert comp.loc["none", "mixedlm_interaction_p"] == pytest.approx(comp.loc["none", "rm_anova_interaction_p"], abs=0.1)


def test_qc_failed_scans_are_left_out_or_kept(make_roi_values, tmp_path):
    rv = make_roi_values(n=10, seed=5)
    rv.loc[(rv["participant_id"] == "sub-03") & (rv["run"] == "2") & (rv["arm"] == "placebo"), "qc_pass"] = False
    dropped = models.fit_crossover_models(rv, tmp_path, exclude_qc_fail=True)
    assert set(dropped["excluded"]["participant_id"]) == {"sub-03"}
    written = pd.read_csv(tmp_path / "model_mixedlm.tsv", sep="\t", keep_default_na=False)
    assert list(written["term"]) == list(dropped["mixedlm"]["term"])
    assert (tmp_path / "model_rm_anova.tsv").is_file()
    kept = models.crossover_models(rv, exclude_qc_fail=False)
    assert kept["excluded"].empty
    fe = models.fixed_effects(kept["mixedlm"], "none")
    assert list(fe.columns) == ["roi", "label", "estimate", "ci_low", "ci_high", "p"]
    assert "subject variance" not in set(fe["label"]) and "during_naltrexone" not in set(fe["label"])
    assert "ketamine: during vs pre (naltrexone)" in set(fe["label"])
