"""Tests of ketamine_cbf.receptors.analysis: PET comparisons, nulls, subject level, dominance, offline."""

import json
import socket

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from ketamine_cbf.receptors import nulls, parcellate, analysis as rc
from ketamine_cbf.reference import templates
from ketamine_cbf.errors import InputError, UsageError

N_SUBJECTS = 12
PLANTED = {"ket_pooled": {"MOR": 1.0, "mGluR5": 1.0}, "interaction": {"MOR": -2.0, "GABAA-a5": 2.0}}


def _unique_components(P: pd.DataFrame) -> pd.DataFrame:
    """Residual of each map's normal scores on the other five's (zero rank-like correlation)."""
    from scipy.special import ndtri

    z = pd.DataFrame(ndtri((stats.rankdata(P, axis=0) - 0.5) / len(P)), index=P.index, columns=P.columns)
    out = {}
    for c in z.columns:
        X = np.column_stack([np.ones(len(z)), z.drop(columns=c).to_numpy()])
        r = z[c].to_numpy() - X @ np.linalg.lstsq(X, z[c].to_numpy(), rcond=None)[0]
        out[c] = r / r.std()
    return pd.DataFrame(out, index=P.index)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A fake stage-3 output on the 4 mm grid with receptor components planted at parcel level."""
    root = tmp_path_factory.mktemp("receptors")
    mask = templates.template_brain_mask(4)
    atlas = parcellate.build_atlas(mask, mask_img=mask, min_voxels=3)
    pet = rc.parcellate_pet(rc.load_pet_maps(mask), atlas)
    U = _unique_components(pet)
    lab = np.asarray(atlas.img.dataobj)
    pos = np.searchsorted(atlas.table.label.to_numpy(), lab[lab > 0])
    rng = np.random.default_rng(42)
    vox, norm = root / "voxelwise", root / "normalisation"
    (vox / "contrasts").mkdir(parents=True)
    (vox / "group").mkdir()
    norm.mkdir()
    nib.save(mask, norm / "space-MNI152NLin2009aSym_res-4_desc-brain_mask.nii.gz")
    rows, group = [], {}
    for c, amps in PLANTED.items():
        pattern = sum(a * U[k].to_numpy() for k, a in amps.items())
        maps = []
        for s in range(N_SUBJECTS):
            vol = np.zeros(mask.shape)
            vol[lab > 0] = pattern[pos] * (1 + 0.3 * rng.standard_normal())
            vol += 4 * ndimage.gaussian_filter(rng.standard_normal(mask.shape), 1.5)
            vol[np.asarray(mask.dataobj) == 0] = np.nan
            rel = f"contrasts/sub-{s:02d}_contrast-{c}_deltacbf.nii.gz"
            nib.save(nib.Nifti1Image(vol.astype(np.float32), mask.affine), vox / rel)
            rows.append({"participant_id": f"sub-{s:02d}", "contrast": c, "path": rel})
            maps.append(vol)
        group[c] = np.mean(maps, axis=0)
        nib.save(nib.Nifti1Image(group[c].astype(np.float32), mask.affine),
                 vox / "group" / f"contrast-{c}_desc-mean_deltacbf.nii.gz")
    pd.DataFrame(rows).to_csv(vox / "contrasts.tsv", sep="\t", index=False)
    return dict(root=root, vox=vox, norm=norm, mask=mask, atlas=atlas, pet=pet, U=U)


def test_read_inputs(study):
    t = rc.read_contrast_table(study["vox"], ["interaction"])
    assert len(t) == N_SUBJECTS and set(t.contrast) == {"interaction"}
    assert all(p.startswith(str(study["vox"])) for p in t.path)
    paths = rc.group_map_paths(study["vox"], ["ket_pooled", "interaction"])
    assert paths["interaction"].name == "contrast-interaction_desc-mean_deltacbf.nii.gz"
    assert rc.find_brain_mask(study["norm"]).name.endswith("desc-brain_mask.nii.gz")


def test_read_inputs_errors(study, tmp_path):
    with pytest.raises(InputError, match="contrasts.tsv: not found"):
        rc.read_contrast_table(tmp_path)
    pd.DataFrame({"participant_id": ["sub-01"], "contrast": ["ket_pooled"]}).to_csv(
        tmp_path / "contrasts.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="contrasts.tsv: missing column 'path'"):
        rc.read_contrast_table(tmp_path)
    pd.DataFrame({"participant_id": ["sub-01"], "contrast": ["ket_pooled"], "path": ["x.nii.gz"]}).to_csv(
        tmp_path / "contrasts.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="column 'path' names 1 missing"):
        rc.read_contrast_table(tmp_path)
    with pytest.raises(UsageError, match="unknown contrast"):
        rc.read_contrast_table(study["vox"], ["ketamine"])
    with pytest.raises(InputError, match="group mean map not found"):
        rc.group_map_paths(tmp_path, ["ket_pooled"])


@pytest.fixture(scope="module")
def group_analysis(study):
    atlas, pet = study["atlas"], study["pet"]
    group = parcellate.parcel_means(rc.group_map_paths(study["vox"], list(PLANTED)), atlas)
    D = parcellate.distance_matrix(atlas).to_numpy()
    gn = rc.make_nulls(group, D, n_nulls=1000, seed=3, key="group", variogram=rc.VARIOGRAM_OPTIONS)
    table, null_r = rc.correlation_table(group, pet, gn, return_nulls=True)
    return dict(group=group, D=D, nulls=gn, table=table, null_r=null_r)


def test_planted_receptors_recovered(group_analysis):
    t = group_analysis["table"]
    planted = {"ketamine": PLANTED["ket_pooled"], "interaction": PLANTED["interaction"]}
    # the synthetic study plants its maps per contrast directly (not via the crossover arms)
    rec = rc.recovery_table(t[t.method == "spearman"], planted,
                            mapping={"ket_pooled": {"ketamine": 1.0}, "interaction": {"interaction": 1.0}})
    moran = rec[rec.null_model == "moran"]
    assert moran.correct.all(), moran[~moran.correct]
    assert moran[moran.target].p.max() <= 2 / 1001  # far in the tail of the nulls
    # the variogram nulls are wider here (see the stage's false-positive check): no false
    # positives, and each planted map is the most extreme of its contrast
    vg = rec[rec.null_model == "variogram"]
    assert not (vg.significant & ~vg.target).any()
    for c, sub in vg.groupby("contrast"):
        assert sub[sub.target].p.max() < sub[~sub.target].p.min()
        assert (np.sign(sub[sub.target].r) == np.sign(sub[sub.target].planted)).all()
    naive = rec[rec.null_model == "naive"]
    assert naive[naive.target].significant.all()
    assert set(rec[rec.target].receptor) == {"MOR", "mGluR5", "GABAA-a5"}


def test_correlation_table_against_scipy_neuromaps_statsmodels(group_analysis, study):
    from neuromaps.stats import compare_images
    from statsmodels.stats.multitest import multipletests

    t, g, pet = group_analysis["table"], group_analysis["group"], study["pet"]
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
    summ = rc.null_correlation_table(group_analysis["null_r"], list(pet.columns))
    assert len(summ) == 2 * 2 * 2 * 6 and (summ.q97_5 > summ.q2_5).all()


def test_subject_level(study, group_analysis):
    atlas, pet = study["atlas"], study["pet"]
    subj = rc.read_contrast_table(study["vox"])
    maps = parcellate.parcel_means(list(subj.path), atlas).T
    maps.index = pd.MultiIndex.from_frame(subj[["participant_id", "contrast"]])
    pet_nulls = rc.make_nulls(pet[["MOR", "KOR"]], group_analysis["D"], ["moran"], 300, seed=1, key="pet")
    res = rc.subject_level_tests(maps, pet, pet_nulls)
    # independent computation of the t-test on Fisher z
    sub = maps.xs("interaction", level=1)
    z = np.arctanh([stats.spearmanr(row, pet["MOR"])[0] for _, row in sub.iterrows()])
    t_ref = stats.ttest_1samp(z, 0)
    row = res[(res.contrast == "interaction") & (res.receptor == "MOR") & (res.test == "t")].iloc[0]
    assert row.t == pytest.approx(t_ref.statistic) and row.p == pytest.approx(t_ref.pvalue)
    assert row.mean_z == pytest.approx(z.mean()) and row.mean_z < 0
    null_row = res[(res.contrast == "interaction") & (res.receptor == "MOR") & (res.test == "moran")].iloc[0]
    assert null_row.p <= 0.05 and null_row.p >= 1 / 301
    assert set(res.test) == {"t", "moran"}
    # nulls that are copies of the PET map give mean z equal to the observed one: p = 1
    same = {("KOR", "moran"): np.tile(pet["KOR"].to_numpy(), (50, 1))}
    p_same = rc.subject_level_tests(maps, pet[["KOR"]], same)
    assert np.allclose(p_same[p_same.test == "moran"].p, 1.0)


def test_dominance_against_statsmodels(study, group_analysis):
    import statsmodels.api as sm

    pet, y = study["pet"], group_analysis["group"]["ket_pooled"]
    pr, mo = rc.dominance_analysis(y, pet, {"moran": group_analysis["nulls"][("ket_pooled", "moran")]},
                                   method="pearson")
    Z = (pet - pet.mean()) / pet.std(ddof=0)
    yz = (y - y.mean()) / y.std(ddof=0)
    fit = sm.OLS(yz.to_numpy(), sm.add_constant(Z.to_numpy())).fit()
    naive = mo[mo.null_model == "naive"].iloc[0]
    assert naive.r2 == pytest.approx(fit.rsquared) and naive.adj_r2 == pytest.approx(fit.rsquared_adj)
    assert naive.p == pytest.approx(fit.f_pvalue)
    b = pr[pr.null_model == "naive"].set_index("predictor")
    np.testing.assert_allclose(b.beta, fit.params[1:], rtol=1e-6)
    np.testing.assert_allclose(b.p_beta, fit.pvalues[1:], rtol=1e-6)
    # general dominance by brute force over subsets (statsmodels), and sum = R^2
    names = list(pet.columns)
    r2 = {(): 0.0}
    from itertools import combinations
    for k in range(1, 7):
        for S in combinations(names, k):
            r2[S] = sm.OLS(y.to_numpy(), sm.add_constant(pet[list(S)].to_numpy())).fit().rsquared
    for i in names:
        others = [n for n in names if n != i]
        ck = [np.mean([r2[tuple(sorted(S + (i,), key=names.index))] - r2[S] for S in combinations(others, k)])
              for k in range(6)]
        assert b.loc[i, "dominance"] == pytest.approx(np.mean(ck), abs=1e-10)
    assert b.dominance.sum() == pytest.approx(fit.rsquared)
    assert pr[pr.null_model == "moran"].p_dominance.between(1 / 1001, 1).all()


def test_dominance_orthogonal_predictors():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((100, 3)) - 0)
    X = pd.DataFrame(Q - Q.mean(0), columns=list("abc"))
    y = X @ np.array([3.0, 1.0, 0.0]) + 0.1 * rng.standard_normal(100)
    pr, mo = rc.dominance_analysis(y, X, method="pearson")
    r = np.array([stats.pearsonr(X[c], y)[0] for c in X])
    np.testing.assert_allclose(pr.dominance, r ** 2, atol=1e-3)
    with pytest.raises(InputError, match="too few"):
        rc.dominance_analysis(y[:4], X.iloc[:4])


def test_false_positive_check(study, group_analysis):
    """Smooth random maps: the naive test over-rejects, the Moran null does not."""
    atlas, pet, D = study["atlas"], study["pet"], group_analysis["D"]
    S, al = rc.random_smooth_maps(atlas, 160, [0.0, 3.0], seed=5)
    assert S.shape == (160, len(atlas)) and set(al) == {0.0, 3.0}
    # the smooth maps are autocorrelated, the white ones are not
    W = nulls.moran_weights(D)
    mi = np.array([(s @ W @ s) / (s @ s) / W.sum() * len(s) for s in S])
    assert mi[al == 3].mean() > 5 * abs(mi[al == 0].mean())
    per = rc.false_positive_rates(S, pet["MOR"].to_numpy(), D, ("moran",), 200, labels=al, seed=1)
    fpr = rc.summarise_false_positives(per, by=("label", "test")).set_index(["label", "test"])
    assert fpr.loc[(3.0, "naive"), "fpr"] > 0.2            # inflated
    assert fpr.loc[(3.0, "moran"), "ci_low"] < 0.05         # consistent with nominal
    assert fpr.loc[(3.0, "moran"), "fpr"] < fpr.loc[(3.0, "naive"), "fpr"] / 2
    assert fpr.loc[(0.0, "naive"), "ci_low"] < 0.05          # white noise: naive is fine
    assert (fpr.ci_low <= fpr.fpr).all() and (fpr.fpr <= fpr.ci_high).all()


def test_planted_truth_reader(tmp_path):
    assert rc.read_planted_receptors(tmp_path) is None
    gt = tmp_path / "derivatives" / "groundtruth"
    gt.mkdir(parents=True)
    (gt / "truth.json").write_text(json.dumps({"receptors": {
        "ketamine": {"amplitudes": {"MOR": 2.0, "mGluR5": 2.0}}, "interaction": {"amplitudes": {"MOR": -1.5}}}}))
    assert rc.read_planted_receptors(tmp_path) == {"ketamine": {"MOR": 2.0, "mGluR5": 2.0},
                                                  "interaction": {"MOR": -1.5}}
    (gt / "truth.json").write_text("{not json")
    with pytest.raises(InputError, match="truth.json"):
        rc.read_planted_receptors(tmp_path)


def test_stage_functions_make_no_network_call(study, monkeypatch):
    """Offline guarantee: the stage's functions never open a network connection."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    parcellate._ho_maxprob.cache_clear()
    mask = study["mask"]
    atlas = parcellate.build_atlas(mask, cortical="schaefer400", mask_img=mask, min_voxels=3)
    pet = rc.parcellate_pet(rc.load_pet_maps(mask), atlas)
    group = parcellate.parcel_means(rc.group_map_paths(study["vox"], ["interaction"]), atlas)
    keep = pet.index[pet.notna().all(axis=1) & group.notna().all(axis=1)]
    D = parcellate.distance_matrix(atlas).loc[keep, keep].to_numpy()
    gn = rc.make_nulls(group.loc[keep], D, n_nulls=50, seed=1)
    t = rc.correlation_table(group.loc[keep], pet.loc[keep], gn)
    rc.dominance_analysis(group.loc[keep, "interaction"], pet.loc[keep], gn[("interaction", "moran")])
    S, al = rc.random_smooth_maps(atlas, 3, 2.0)
    rc.false_positive_rates(S[:, atlas.table.name.isin(keep).to_numpy()], pet.loc[keep, "MOR"].to_numpy(), D,
                            n_nulls=20)
    import neuromaps.parcellate  # noqa: F401  (importing the offline parts of neuromaps is fine)
    import neuromaps.stats  # noqa: F401
    assert not calls and len(t) > 0


def test_figures(study, group_analysis, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    t, g, pet = group_analysis["table"], group_analysis["group"], study["pet"]
    figs = [rc.plot_correlations(t), rc.plot_null_distributions(group_analysis["null_r"], t, "interaction"),
            rc.plot_scatter(g, pet, [("interaction", "MOR")], study["atlas"].table, t),
            rc.plot_variograms(g["interaction"], {"moran": group_analysis["nulls"][("interaction", "moran")]},
                               group_analysis["D"])]
    for k, f in enumerate(figs):
        f.savefig(tmp_path / f"{k}.png")
        assert (tmp_path / f"{k}.png").stat().st_size > 5000


def test_recovery_table_loadings_follow_the_contrast_definitions():
    """ket_naltrexone = placebo-arm effect + interaction; pooled = their mean."""
    rows = [{"contrast": c, "receptor": "MOR", "r": 0.3, "significant": True}
            for c in ("ket_placebo", "ket_naltrexone", "ket_pooled", "interaction")]
    planted = {"ketamine": {"MOR": 2.5, "mGluR5": 1.6}, "interaction": {"MOR": -1.0}}
    rec = rc.recovery_table(pd.DataFrame(rows), planted).set_index("contrast")["planted"]
    assert rec.to_dict() == {"ket_placebo": 2.5, "ket_naltrexone": 1.5, "ket_pooled": 2.0,
                             "interaction": -1.0}


def test_describe_recovery_names_misses_and_false_positives():
    rows = [
        {"contrast": "interaction", "receptor": "MOR", "null_model": "moran", "r": -0.58,
         "p_fdr": 0.16, "significant": False},
        {"contrast": "interaction", "receptor": "KOR", "null_model": "moran", "r": -0.2,
         "p_fdr": 0.6, "significant": False},
        {"contrast": "interaction", "receptor": "MOR", "null_model": "variogram", "r": -0.58,
         "p_fdr": 0.001, "significant": True},
        {"contrast": "interaction", "receptor": "KOR", "null_model": "variogram", "r": -0.2,
         "p_fdr": 0.04, "significant": True},
        {"contrast": "interaction", "receptor": "MOR", "null_model": "naive", "r": -0.58,
         "p_fdr": 1e-9, "significant": True},
        {"contrast": "interaction", "receptor": "KOR", "null_model": "naive", "r": -0.2,
         "p_fdr": 0.5, "significant": False},
    ]
    rec = rc.recovery_table(pd.DataFrame(rows), {"interaction": {"MOR": -1.0}})
    text = rc.describe_recovery(rec).splitlines()
    assert len(text) == 3
    assert text[0].startswith("* **moran**: 0 of 1") and "interaction × MOR" in text[0]
    assert "false positives interaction × KOR" in text[1] and "1 of 1" in text[1]
    assert text[2] == "* **naive**: all 1 planted associations found (with the planted sign), no false ones."
    # a significant association with the wrong sign is a miss
    flipped = pd.DataFrame(rows[4:]).assign(r=[0.58, -0.2])
    out = rc.describe_recovery(rc.recovery_table(flipped, {"interaction": {"MOR": -1.0}}))
    assert "0 of 1" in out
