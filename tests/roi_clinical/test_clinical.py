"""Brain-behaviour statistics of stage 4 (ketamine_cbf.roi_clinical.clinical)."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketamine_cbf.roi_clinical import clinical, rois
from ketamine_cbf.errors import InputError
from ketamine_cbf.io.provenance import write_tsv


# ------------------------------------------------------------------ synthetic data
def _bivariate(n, rho, rng):
    z = rng.standard_normal((2, n))
    return z[0], rho * z[0] + np.sqrt(1 - rho ** 2) * z[1]


def _measures(n=30, rho=(0.7, 0.0), seed=0):
    """Per participant x arm measures with one planted pair per arm."""
    rng = np.random.default_rng(seed)
    rows = []
    for arm, r in zip(clinical.ARMS, rho):
        x, y = _bivariate(n, r, rng)
        for i in range(n):
            rows.append({"participant_id": f"sub-{i + 1:02d}", "session_id": f"ses-{1 + (arm == 'naltrexone')}",
                         "arm": arm, "pgACC_delta": x[i], "psi_delusional_thinking": y[i]})
    return pd.DataFrame(rows)


def _roi_values(n=16, interaction=2.0, ketamine=5.0, seed=0, rois_=("pgACC",)):
    """Long ROI table of a balanced crossover with planted ketamine and interaction effects."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        pid = f"sub-{i + 1:02d}"
        u = rng.normal(0, 5)
        arms = ("placebo", "naltrexone") if i % 2 == 0 else ("naltrexone", "placebo")
        for period, arm in enumerate(arms, start=1):
            v = rng.normal(0, 2)
            for run, tp in ((1, "pre"), (2, "during")):
                g = 50 + u + v + rng.normal(0, 1)
                for roi in rois_:
                    y = 55 + u + v + (ketamine if tp == "during" else 0) \
                        + (interaction if (tp == "during" and arm == "naltrexone") else 0) + rng.normal(0, 1.5)
                    rows.append({"participant_id": pid, "session_id": f"ses-{period}", "run": str(run),
                                 "arm": arm, "period": str(period), "timepoint": tp, "roi": roi, "cbf": y,
                                 "global_gm_cbf": g, "rcbf": y / g, "n_voxels": 100, "qc_pass": True})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ Zou (2007) against cocor
def test_zou_nonoverlap_matches_cocor():
    # cocor's test suite (Diedenhofen & Musch 2015), Zou (2007) example: CI (-.096, .501)
    lo, hi = clinical.zou_ci_nonoverlap(r12=.396, r34=.189, r13=.208, r14=.143, r23=.023, r24=.423, n=66)
    assert (round(lo, 3), round(hi, 3)) == (-0.096, 0.501)


def test_zou_overlap_matches_cocor():
    # cocor.dep.groups.overlap(.396, .179, .088, 66, "zou2007") -> (-.093, .517)
    lo, hi = clinical.zou_ci_overlap(r12=.396, r13=.179, r23=.088, n=66)
    assert (round(lo, 3), round(hi, 3)) == (-0.093, 0.517)


def test_zou_reduces_to_independent_case_and_is_antisymmetric():
    # with all cross-correlations 0, c = 0: Zou's independent-groups interval
    lo, hi = clinical.zou_ci_nonoverlap(0.6, 0.1, 0, 0, 0, 0, n=40)
    l1, u1 = clinical._fisher_ci(0.6, 40)
    l2, u2 = clinical._fisher_ci(0.1, 40)
    assert lo == pytest.approx(0.5 - np.sqrt((0.6 - l1) ** 2 + (u2 - 0.1) ** 2))
    assert hi == pytest.approx(0.5 + np.sqrt((u1 - 0.6) ** 2 + (0.1 - l2) ** 2))
    lo2, hi2 = clinical.zou_ci_nonoverlap(0.1, 0.6, 0.3, 0.2, 0.25, 0.4, n=40)
    lo3, hi3 = clinical.zou_ci_nonoverlap(0.6, 0.1, 0.3, 0.25, 0.2, 0.4, n=40)
    assert (lo2, hi2) == pytest.approx((-hi3, -lo3))


# ------------------------------------------------------------------ correlations
def test_correlations_match_scipy_and_fdr_matches_pingouin():
    import pingouin as pg

    m = _measures(n=25, seed=3)
    m.loc[m.index[0], "psi_delusional_thinking"] = np.nan  # sub-01 placebo missing
    corr = clinical.brain_behaviour_correlations(
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
    again = clinical.brain_behaviour_correlations(
        m, [("pgACC_delta", "psi_delusional_thinking")], n_boot=500, seed=1)
    pd.testing.assert_frame_equal(corr, again)
    with pytest.raises(InputError, match="no column 'sgACC_baseline'"):
        clinical.brain_behaviour_correlations(m, [("sgACC_baseline", "psi_delusional_thinking")])


def test_bootstrap_ci_with_tied_small_samples_is_defined():
    x = np.array([1, 1, 1, 2, 2, 3, 1, 2], float)
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1], float)
    lo, hi = clinical.bootstrap_corr_ci(x, y, "pearson", n_boot=500, rng=0)
    r = np.corrcoef(x, y)[0, 1]
    assert np.isfinite([lo, hi]).all() and lo <= r <= hi


def test_bootstrap_ci_coverage():
    """BCa intervals of Pearson r cover the true rho about 95% of the time."""
    rng = np.random.default_rng(11)
    hits = 0
    reps = 150
    for k in range(reps):
        x, y = _bivariate(30, 0.5, rng)
        lo, hi = clinical.bootstrap_corr_ci(x, y, "pearson", n_boot=1000, rng=k)
        hits += lo <= 0.5 <= hi
    assert 0.88 <= hits / reps <= 0.995


# ------------------------------------------------------------------ arm differences
def test_permutation_exact_matches_brute_force():
    rng = np.random.default_rng(5)
    xa, ya = _bivariate(8, 0.8, rng)
    xb, yb = _bivariate(8, 0.0, rng)
    res = clinical.permutation_arm_difference(xa, ya, xb, yb, n_perm=5000)
    assert res["exact"] and res["n_perm"] == 2 ** 8
    z = [clinical._zscore(v) for v in (xa, ya, xb, yb)]
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


def test_permutation_false_positive_rate_and_power():
    rng = np.random.default_rng(21)
    ps = []
    for k in range(200):  # null: same rho in both arms, arms differ in mean and spread
        xa, ya = _bivariate(20, 0.4, rng)
        xb, yb = _bivariate(20, 0.4, rng)
        ps.append(clinical.permutation_arm_difference(xa, ya, 3 * xb + 10, yb - 5, n_perm=500, rng=k)["p"])
    assert np.mean(np.array(ps) < 0.05) <= 0.09
    xa, ya = _bivariate(40, 0.85, rng)
    xb, yb = _bivariate(40, 0.0, rng)
    assert clinical.permutation_arm_difference(xa, ya, xb, yb, n_perm=2000, rng=1)["p"] < 0.01


def test_compare_arms_pairs_subjects_by_id():
    m = _measures(n=30, rho=(0.8, 0.0), seed=4)
    m = m[~((m["participant_id"] == "sub-03") & (m["arm"] == "naltrexone"))]  # one arm missing
    d1 = clinical.compare_arms(m, [("pgACC_delta", "psi_delusional_thinking")], n_perm=1000, n_boot=500, seed=2)
    shuffled = m.sample(frac=1.0, random_state=7)
    d2 = clinical.compare_arms(shuffled, [("pgACC_delta", "psi_delusional_thinking")], n_perm=1000, n_boot=500, seed=2)
    pd.testing.assert_frame_equal(d1, d2)
    assert (d1["n_paired"] == 29).all() and (d1["excluded"] == "sub-03").all()
    p = d1[d1["method"] == "pearson"].iloc[0]
    assert p["zou_ci_low"] < p["diff"] < p["zou_ci_high"]
    assert p["boot_ci_low"] < p["diff"] < p["boot_ci_high"]
    assert p["zou_ci_low"] > 0 and p["p_perm"] < 0.01  # planted 0.8 vs 0.0


# ------------------------------------------------------------------ crossover models
def test_mixedlm_interaction_equals_difference_of_changes_and_recovers_truth():
    rv = _roi_values(n=20, interaction=2.0, seed=1)
    t = clinical.crossover_mixedlm(rv, "pgACC").set_index("term")
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
    r = clinical.crossover_mixedlm(rv, "pgACC", "ratio")
    assert bool(r["converged"].iloc[0]) and r["units"].iloc[0].startswith("relative")


def test_rm_anova_matches_statsmodels_and_reports_incomplete():
    from statsmodels.stats.anova import AnovaRM

    rv = _roi_values(n=14, seed=2)
    rv = rv[~((rv["participant_id"] == "sub-05") & (rv["run"] == "2") & (rv["arm"] == "placebo"))]
    t, excluded = clinical.crossover_rm_anova(rv, "pgACC")
    assert excluded == ["sub-05"]
    complete = rv[rv["participant_id"] != "sub-05"]
    ref = AnovaRM(complete, "cbf", "participant_id", within=["arm", "timepoint"]).fit().anova_table
    ours = t.set_index("Source")
    assert ours.loc["arm * timepoint", "F"] == pytest.approx(ref.loc["arm:timepoint", "F Value"], rel=1e-8)
    assert ours.loc["timepoint", "F"] == pytest.approx(ref.loc["timepoint", "F Value"], rel=1e-8)
    models = clinical.crossover_models(rv, adjustments=("none", "ratio", "ancova"))
    assert set(models["excluded"]["participant_id"]) == {"sub-05"}
    comp = models["comparison"].set_index("adjustment")
    assert np.isnan(comp.loc["ancova", "rm_anova_interaction_F"])
    # on (nearly) balanced data the two analyses agree on the interaction
    assert comp.loc["none", "mixedlm_interaction_p"] == pytest.approx(comp.loc["none", "rm_anova_interaction_p"], abs=0.1)


# ------------------------------------------------------------------ phenotype alignment
def _write_phenotype(bids, sessions, drop=(), extra=(), shuffle=False):
    rng = np.random.default_rng(0)
    tables = {
        "psi": ["psi_delusional_thinking", "psi_perceptual_distortion"], "cadss": ["cadss_total"],
        "madrs": ["madrs_baseline", "madrs_day1"], "qids_sr": ["qids_sr_baseline", "qids_sr_day1"]}
    keys = [k for k in map(tuple, sessions[["participant_id", "session_id"]].to_numpy()) if k not in drop]
    keys += list(extra)
    out = {}
    for name, cols in tables.items():
        t = pd.DataFrame(keys, columns=["participant_id", "session_id"])
        for c in cols:
            t[c] = rng.integers(0, 30, len(t))
        if shuffle:
            t = t.sample(frac=1.0, random_state=3)
        write_tsv(bids / "phenotype" / f"{name}.tsv", t)
        out[name] = t
    return out


def _sessions(n=6):
    return pd.DataFrame([{"participant_id": f"sub-{i:02d}", "session_id": s, "arm": a, "period": s[-1]}
                         for i in range(1, n + 1) for s, a in (("ses-1", "placebo"), ("ses-2", "naltrexone"))])


def test_missing_and_extra_subjects_are_reported_by_id(tmp_path):
    sess = _sessions()
    _write_phenotype(tmp_path, sess, drop=[("sub-02", "ses-1"), ("sub-02", "ses-2")],
                     extra=[("sub-99", "ses-1")])
    ph = clinical.read_phenotype(tmp_path)
    with pytest.warns(UserWarning, match=r"no imaging data: sub-99; no phenotype row: sub-02"):
        merged, report = clinical.align_phenotype(sess, ph)
    assert set(report.loc[report["issue"] == "no imaging data", "participant_id"]) == {"sub-99"}
    assert set(report.loc[report["issue"] == "no phenotype row", "participant_id"]) == {"sub-02"}
    assert set(report["file"]) == {f"phenotype/{n}.tsv" for n in ("psi", "cadss", "madrs", "qids_sr")}
    assert "sub-99" not in set(merged["participant_id"])
    assert merged.loc[merged["participant_id"] == "sub-02", "cadss_total"].isna().all()
    # the missing participant is named in the tests that could not use them
    merged["pgACC_delta"] = np.arange(len(merged), dtype=float) % 5
    corr = clinical.brain_behaviour_correlations(merged, [("pgACC_delta", "cadss_total")], n_boot=0)
    assert (corr["excluded"] == "sub-02").all() and (corr["n"] == 5).all()


def test_alignment_uses_ids_not_row_order(tmp_path):
    sess = _sessions()
    written = _write_phenotype(tmp_path, sess, shuffle=True)
    merged, report = clinical.align_phenotype(sess, clinical.read_phenotype(tmp_path))
    assert report.empty
    ref = written["madrs"].set_index(["participant_id", "session_id"])
    for r in merged.itertuples():
        b, d = ref.loc[(r.participant_id, r.session_id), ["madrs_baseline", "madrs_day1"]]
        assert r.madrs_baseline == b and r.madrs_improvement == b - d  # baseline - day 1


def test_read_phenotype_errors_name_file_column_and_ids(tmp_path):
    sess = _sessions(3)
    written = _write_phenotype(tmp_path, sess)
    t = written["psi"].drop(columns="psi_perceptual_distortion")
    write_tsv(tmp_path / "phenotype" / "psi.tsv", t)
    with pytest.raises(InputError, match=r"psi.tsv: missing column 'psi_perceptual_distortion'"):
        clinical.read_phenotype(tmp_path)
    t = written["psi"].astype({"psi_delusional_thinking": object})
    t.loc[t.index[1], "psi_delusional_thinking"] = "high"
    write_tsv(tmp_path / "phenotype" / "psi.tsv", t)
    with pytest.raises(InputError, match=r"psi.tsv: column 'psi_delusional_thinking' has non-numeric values for sub-01"):
        clinical.read_phenotype(tmp_path)
    write_tsv(tmp_path / "phenotype" / "psi.tsv", pd.concat([written["psi"], written["psi"].iloc[:1]]))
    with pytest.raises(InputError, match=r"psi.tsv: duplicate rows.*sub-01"):
        clinical.read_phenotype(tmp_path)
    (tmp_path / "phenotype" / "psi.tsv").unlink()
    with pytest.raises(InputError, match=r"psi.tsv: phenotype file not found"):
        clinical.read_phenotype(tmp_path)


def test_subject_measures_delta_baseline_and_qc_exclusion():
    rv = _roi_values(n=4, seed=3, rois_=("pgACC", "sgACC"))
    bad = (rv["participant_id"] == "sub-02") & (rv["session_id"] == "ses-1") & (rv["run"] == "2")
    rv.loc[bad, "qc_pass"] = False
    m, excluded = clinical.subject_measures(rv, value="cbf")
    assert list(excluded[["participant_id", "session_id", "run"]].iloc[0]) == ["sub-02", "ses-1", "2"]
    w = rv.set_index(["participant_id", "session_id", "roi", "timepoint"])["cbf"]
    for r in m.itertuples():
        pre = w[(r.participant_id, r.session_id, "pgACC", "pre")]
        assert r.pgACC_baseline == pytest.approx(pre)
        if r.participant_id == "sub-02" and r.session_id == "ses-1":
            assert np.isnan(r.pgACC_delta)
        else:
            assert r.pgACC_delta == pytest.approx(w[(r.participant_id, r.session_id, "pgACC", "during")] - pre)
    mr, _ = clinical.subject_measures(rv, value="rcbf")
    assert not np.allclose(mr["pgACC_baseline"], m["pgACC_baseline"])


# ------------------------------------------------------------------ planted truth and published values
def test_published_comparison_and_claims():
    m = _measures(n=26, rho=(0.6, 0.0), seed=8)
    corr = clinical.brain_behaviour_correlations(m, [("pgACC_delta", "psi_delusional_thinking")], n_boot=500, seed=0)
    diff = clinical.compare_arms(m, [("pgACC_delta", "psi_delusional_thinking")], n_perm=500, n_boot=500, seed=0)
    pub = clinical.published_comparison(corr, diff, data_label="simulated")
    row = pub[pub["test"] == "pgACC_delta ~ psi_delusional_thinking"].iloc[0]
    assert row["published_r"] == 0.56 and row["data"] == "simulated"
    lo, hi = np.tanh(np.arctanh(0.56) + np.array([-1, 1]) * 1.959964 / np.sqrt(23))
    assert row["published_ci95_fisher"].startswith(f"[{lo:.2f}, {hi:.2f}]")
    assert row["our_r"] == pytest.approx(corr.query("method == 'pearson' and arm == 'placebo'")["r"].iloc[0])
    claims = clinical.claims_table(corr, diff)
    text = clinical.describe_claims(claims)
    assert len(text) == 1 and "Zou 95% CI" in text[0]


def _truth_level_study(dataset):
    """ROI values of a simulated dataset computed from its true MNI CBF maps with the
    stage's own ROI masks (a cheap stand-in for the pipeline: no quantification or
    registration, so a failure here is the stage's, not the upstream stages')."""
    import nibabel as nib

    from ketamine_cbf.reference.templates import template_brain_mask, template_gm

    truth_maps = rois.groundtruth_cbf_maps(dataset)
    gt = dataset / "derivatives" / "groundtruth"
    ref = nib.load(str(gt / truth_maps["cbf"].iloc[0]))
    res = int(round(abs(ref.affine[0, 0])))
    brain = rois.resample_mask(template_brain_mask(res), ref)
    gm = rois._resample_continuous(template_gm(res), ref)
    masks, _ = rois.define_rois(brain, gm_img=gm, min_voxels=1)
    rv = rois.extract_roi_values(truth_maps, gt, masks)
    sessions = truth_maps[["participant_id", "session_id", "arm", "period"]].drop_duplicates()
    merged, report = clinical.align_phenotype(sessions, clinical.read_phenotype(dataset))
    assert report.empty
    measures, _ = clinical.subject_measures(rv, merged, value="rcbf")
    return rv, measures


def test_null_dataset_no_correlation_survives_fdr(tiny_null_dataset):
    """Done-when: on the --null simulation (fixed seed) nothing survives FDR, neither a
    per-arm correlation nor an arm difference, with either method."""
    rv, measures = _truth_level_study(tiny_null_dataset)
    assert measures["participant_id"].nunique() == 8
    corr = clinical.brain_behaviour_correlations(measures, n_boot=300, seed=20261126)
    diff = clinical.compare_arms(measures, n_perm=500, n_boot=300, seed=20261126)
    assert len(corr) == 2 * 5 * 2 and corr["p"].notna().all()
    assert not corr["significant_fdr"].any()
    assert not diff["significant_fdr"].any()
    assert clinical.read_planted_correlations(tiny_null_dataset)["target_r"].eq(0).all()


def test_planted_correlations_recovered_on_tiny_dataset(tiny_dataset):
    """Truth.json is read, and each planted r (truth-level ROI) lies inside the 95% CI of
    the r recovered with the stage's atlas ROIs on the true maps."""
    planted = clinical.read_planted_correlations(tiny_dataset)
    assert set(planted["arm"]) == set(clinical.ARMS) and len(planted) == 8
    rv, measures = _truth_level_study(tiny_dataset)
    corr = clinical.brain_behaviour_correlations(measures, n_boot=1000, seed=20261126)
    rec = clinical.planted_vs_recovered(corr, planted[planted["value"] == "rcbf"])
    assert rec["r"].notna().all()
    assert rec["within_fisher_ci"].all(), rec
    assert rec["ci_low"].notna().all() and rec["within_ci"].all(), rec
    # the model sees ketamine's ACC increase (planted focal effects of 8-10 ml/100 g/min)
    t = clinical.crossover_mixedlm(rv, "pgACC").set_index("term")
    assert t.loc["during", "estimate"] > 0 and t.loc["during_naltrexone", "estimate"] > 0
    assert t.loc["during_naltrexone", "ci_low"] > 0 or t.loc["during", "ci_low"] > 0
