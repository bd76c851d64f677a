"""Group inference end to end on a fake stage-2 folder: planted ACC effects, outputs, report."""

import numpy as np
import pytest

from ketamine_cbf.io.layout import CONTRASTS
from ketamine_cbf.io.provenance import sha256_file
from ketamine_cbf.study import ACC_CENTRES_MNI
from ketamine_cbf.voxelwise import contrasts as C
from ketamine_cbf.voxelwise import group as G
from ketamine_cbf.voxelwise import report as R
from ketamine_cbf.voxelwise.synthetic import write_normalisation_folder


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    write_normalisation_folder(root / "normalisation", n_subjects=12, resolution=4, seed=11,
                               effect_amplitude=25.0, interaction_amplitude=0.0, noise_sd=5.0)
    cm = C.read_cbf_maps(root / "normalisation")
    C.compute_contrasts(cm, root / "voxelwise", global_normalise="proportional")
    table = C.read_contrasts(root / "voxelwise")
    mask = G.analysis_mask(root / "normalisation", list(table["abspath"]), 0.3)
    results = {c: G.group_inference(table[table.contrast == c], mask, c, n_perm=300, seed=4)
               for c in CONTRASTS}
    return root, table, mask, results


def test_planted_acc_effects_are_found_and_interaction_is_not(study):
    _, _, _, results = study
    for c in ("ket_placebo", "ket_naltrexone", "ket_pooled"):
        s = R.acc_summary(results[c])
        assert (s["n_sig_tfce"] > 0).all(), (c, s)           # all three ACC subregions
        assert (s["peak_t"] > 0).all() and (s["mean_delta_cbf"] > 0).all()
    s = R.acc_summary(results["interaction"])
    assert (s["n_sig_tfce"] == 0).all() and (s["n_sig_maxT"] == 0).all()
    info = results["ket_pooled"].info
    assert info["n_subjects"] == 12 and info["n_perm"] == 300 and not info["exhaustive"]


def test_significant_voxels_lie_in_the_planted_blobs(study):
    """Ground truth: FWE-significant voxels (TFCE) of the pooled effect are near ACC centres."""
    _, _, mask, results = study
    r = results["ket_pooled"]
    m = np.asarray(mask.dataobj) > 0
    xyz = (mask.affine @ np.c_[np.argwhere(m), np.ones(m.sum())].T).T[:, :3]
    sig = r.maps["logp_max_tfce"] >= -np.log10(0.05)
    d = np.min([np.linalg.norm(xyz[sig] - np.asarray(c), axis=1) for c in ACC_CENTRES_MNI.values()], axis=0)
    assert sig.sum() > 10
    assert np.percentile(d, 95) < 20.0   # blobs have 12 mm FWHM


def test_group_maps_follow_the_contract_and_are_reproducible(study, tmp_path):
    root, table, mask, results = study
    files = G.write_group_maps(results["ket_placebo"], tmp_path / "group")
    names = {f.name for f in files}
    for stat in ("t", "logpFWEmaxT", "tfce", "logpFWEtfce", "clustermass", "logpFWEclustermass"):
        assert f"contrast-ket_placebo_stat-{stat}_statmap.nii.gz" in names
    assert "contrast-ket_placebo_desc-mean_deltacbf.nii.gz" in names
    again = G.group_inference(table[table.contrast == "ket_placebo"], mask, "ket_placebo",
                              n_perm=300, seed=4)
    files2 = G.write_group_maps(again, tmp_path / "group2")
    assert [sha256_file(a) for a in files] == [sha256_file(b) for b in files2]
    other = G.group_inference(table[table.contrast == "ket_placebo"], mask, "ket_placebo",
                              n_perm=300, seed=5)
    assert not np.array_equal(other.null["max_t"], again.null["max_t"])


def test_cluster_table_labels_the_acc(study):
    _, _, _, results = study
    r = results["ket_pooled"]
    tab = R.cluster_table(r.img("t"), r.img("logp_max_tfce"), mean_img=r.img("mean"), method="tfce")
    assert len(tab) > 0 and (tab["p_fwe"] < 0.05).all() and (tab["direction"] == "increase").all()
    top = tab.sort_values("t", ascending=False).groupby("cluster").head(1)
    near = top[top["acc_region"] != ""]
    assert len(near) >= 2
    assert near["harvard_oxford"].str.contains("Cingulate|Subcallosal|Paracingulate|Frontal Medial").all()
    text = R.describe_acc(R.acc_summary(r), "Pooled", min_p=r.info["min_p"])
    for region in ACC_CENTRES_MNI:
        assert region in text


def test_atlas_label_at_known_coordinates():
    assert "Subcallosal" in R.atlas_label((0, 24, -10), "harvard_oxford")
    assert "Cingulate" in R.atlas_label((4, 18, 34), "harvard_oxford")
    assert R.atlas_label((0, 0, 200), "aal") == "no label"


def test_order_covariate_coding():
    import pandas as pd

    z = G.order_covariate(pd.Series(["PN", "NP", "PN"]))
    np.testing.assert_array_equal(z[:, 0], [0.5, -0.5, 0.5])
    assert G.order_covariate(pd.Series(["PN", "PN"])) is None
    with pytest.raises(Exception, match="order"):
        G.order_covariate(pd.Series(["PN", "n/a"]))


def test_stage_inference_equals_nilearn(study):
    """The stage's own path (group_inference) against nilearn, same flips: rounding only."""
    _, table, mask, _ = study
    rows = table[table.contrast == "ket_pooled"]
    check = G.compare_with_nilearn(rows, mask, "ket_pooled", n_perm=4, seed=4, covariates=["order"])
    d = check.set_index("map")
    assert set(d.index) >= {"t", "tfce", "logp_max_t", "logp_max_tfce", "size", "mass"}
    assert (d.loc[["t", "tfce", "mass"], "max_rel_diff"] < 1e-9).all()
    assert (d.loc[["logp_max_t", "logp_max_tfce", "size"], "max_abs_diff"] == 0).all()


def _groundtruth(root, ket, inter, affine):
    import nibabel as nib

    gt = root / "derivatives" / "groundtruth"
    gt.mkdir(parents=True, exist_ok=True)
    for desc, data in (("ketamineEffect", ket), ("interactionEffect", inter)):
        nib.save(nib.Nifti1Image(data.astype(np.float32), affine),
                 gt / f"space-MNI152NLin2009aSym_res-9_desc-{desc}_cbf.nii.gz")


def test_truth_recovery_on_planted_blobs(study, tmp_path):
    from ketamine_cbf.voxelwise.synthetic import acc_effect_map

    _, _, mask, results = study
    ket = acc_effect_map(mask.affine, mask.shape, 25.0)
    _groundtruth(tmp_path, ket, np.zeros(mask.shape), mask.affine)
    truth = R.contrast_truth(tmp_path, "ket_pooled", mask)
    rec = R.truth_recovery(results["ket_pooled"], truth)
    assert rec["r_mean_vs_truth"] > 0.5 and rec["sensitivity"] > 0.2
    assert rec["n_sig_null_voxels"] == 0 or rec["sig_null_max_mm"] < 20
    assert R.contrast_truth(tmp_path / "nowhere", "ket_pooled", mask) is None


def test_normalised_truth_of_a_global_change_is_zero(tmp_path):
    """A planted change proportional to baseline CBF is global: nothing regional remains."""
    import nibabel as nib

    from ketamine_cbf.voxelwise.synthetic import analysis_grid

    affine, brain, gm, wm, mask = analysis_grid(6)
    base = (60 * gm + 20 * wm) * brain
    _groundtruth(tmp_path, 0.05 * base, np.zeros(gm.shape), affine)
    kw = dict(baseline_img=nib.Nifti1Image(base, affine), gm_img=nib.Nifti1Image(gm, affine))
    target = nib.Nifti1Image(mask.astype(np.uint8), affine)
    raw = R.contrast_truth(tmp_path, "ket_pooled", target).get_fdata()
    rel = R.contrast_truth(tmp_path, "ket_pooled", target, "proportional", **kw).get_fdata()
    assert raw[mask].max() > 2.0
    assert np.abs(rel).max() < 1e-4
