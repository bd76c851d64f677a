"""ROI extraction of stage 4 (ketamine_cbf.roi_clinical.extraction) on stage 2's outputs."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError
from ketamine_cbf.io import derivatives
from ketamine_cbf.io.provenance import save_nifti, write_tsv
from ketamine_cbf.reference import rois as reference_rois
from ketamine_cbf.reference.templates import template_brain_mask, template_gm
from ketamine_cbf.roi_clinical import extraction


@pytest.fixture(scope="module")
def grid2():
    """The 2 mm template grid: (brain mask, GM probability)."""
    return template_brain_mask(2), template_gm(2)


@pytest.fixture(scope="module")
def ho_masks(grid2):
    """The default (Harvard-Oxford) ROI masks and table on the 2 mm grid."""
    return reference_rois.define_rois(grid2[0], gm_img=grid2[1])


def _study(tmp_path, brain, masks, n=3):
    """Scan maps whose ROI values are known exactly (constant inside each ROI)."""
    norm = tmp_path / "normalisation"
    rng = np.random.default_rng(0)
    rows, truth = [], {}
    for s in range(1, n + 1):
        for ses, arm in (("ses-1", "placebo"), ("ses-2", "naltrexone")):
            for run, tp in ((1, "pre"), (2, "during")):
                data = np.full(brain.shape, 40.0, np.float32)
                vals = {k: float(rng.uniform(30, 80)) for k in masks}
                for k, m in masks.items():
                    data[np.asarray(m.dataobj) > 0] = vals[k]
                rel = f"sub-{s:02d}/{ses}/perf/sub-{s:02d}_{ses}_run-{run}_cbf.nii.gz"
                save_nifti(nib.Nifti1Image(data, brain.affine), norm / rel)
                glob = float(rng.uniform(40, 60))
                rows.append({"participant_id": f"sub-{s:02d}", "session_id": ses, "run": run, "arm": arm,
                             "period": ses[-1], "timepoint": tp, "cbf": rel, "cbf_smooth": rel,
                             "global_gm_cbf": glob, "qc_pass": True})
                truth[(f"sub-{s:02d}", ses, str(run))] = (vals, glob)
    write_tsv(norm / "cbf_maps.tsv", pd.DataFrame(rows))
    return norm, truth


def test_extract_roi_values_exact_and_matches_nilearn(tmp_path, grid2, ho_masks):
    from nilearn.maskers import NiftiMasker

    brain, _ = grid2
    masks, _ = ho_masks
    norm, truth = _study(tmp_path, brain, masks)
    cm = derivatives.read_cbf_maps(norm)
    rv = extraction.extract_roi_values(cm, masks)
    assert len(rv) == len(cm) * len(masks)
    for r in rv.itertuples():
        vals, glob = truth[(r.participant_id, r.session_id, str(r.run))]
        assert r.cbf == pytest.approx(vals[r.roi], rel=1e-6)
        assert r.rcbf == pytest.approx(vals[r.roi] / glob, rel=1e-6)
    # independent reference: nilearn's masker on a map with real spatial variation
    rng = np.random.default_rng(1)
    img = nib.Nifti1Image(rng.normal(50, 10, brain.shape).astype(np.float32), brain.affine)
    ours = extraction.roi_means([img], masks, names=["x"])
    for k, m in masks.items():
        ref = NiftiMasker(mask_img=m, standardize=None).fit_transform(img).mean()
        assert ours.loc["x", k] == pytest.approx(ref, rel=1e-5)


def test_roi_means_ignores_nan_and_checks_grid(tmp_path, grid2):
    brain, _ = grid2
    m = reference_rois.sphere_rois(brain, {"a": (0.0, 20.0, 0.0)}, 6.0)
    data = np.full(brain.shape, 10.0, np.float32)
    inside = np.argwhere(np.asarray(m["a"].dataobj) > 0)
    data[tuple(inside[0])] = np.nan
    data[tuple(inside[1])] = 1000.0
    n = len(inside)
    out = extraction.roi_means([nib.Nifti1Image(data, brain.affine)], m, names=["s"])
    assert out.loc["s", "a_n_voxels"] == n - 1
    assert out.loc["s", "a"] == pytest.approx((10.0 * (n - 2) + 1000.0) / (n - 1))
    other = nib.Nifti1Image(np.zeros((10, 10, 10), np.float32), np.eye(4))
    save_nifti(other, tmp_path / "wrong_grid_cbf.nii.gz")
    with pytest.raises(InputError, match="wrong_grid_cbf.nii.gz: grid"):
        extraction.roi_means([tmp_path / "wrong_grid_cbf.nii.gz"], m)


def test_read_cbf_maps_errors_name_file_and_field(tmp_path, grid2, ho_masks):
    """Stage 4 reads cbf_maps.tsv through io.derivatives.read_cbf_maps; its errors name the
    file and the field."""
    brain, _ = grid2
    norm, _ = _study(tmp_path, brain, {"a": ho_masks[0]["pgACC"]}, n=1)
    t = pd.read_csv(norm / "cbf_maps.tsv", sep="\t")
    write_tsv(norm / "cbf_maps.tsv", t.drop(columns="global_gm_cbf"))
    with pytest.raises(InputError, match=r"cbf_maps.tsv: missing column 'global_gm_cbf'"):
        derivatives.read_cbf_maps(norm)
    bad = t.copy()
    bad.loc[0, "arm"] = "drug"
    write_tsv(norm / "cbf_maps.tsv", bad)
    with pytest.raises(InputError, match=r"column 'arm' has value\(s\) 'drug'"):
        derivatives.read_cbf_maps(norm)
    bad.loc[0, "arm"] = "n/a"
    write_tsv(norm / "cbf_maps.tsv", bad)
    with pytest.raises(InputError, match=r"cbf_maps.tsv: column 'arm' has value\(s\) 'n/a'"):
        derivatives.read_cbf_maps(norm)
    write_tsv(norm / "cbf_maps.tsv", pd.concat([t, t.iloc[:1]]))
    with pytest.raises(InputError, match="duplicate rows.*sub-01"):
        derivatives.read_cbf_maps(norm)
    gone = t.copy()
    gone.loc[0, "cbf"] = "sub-01/nothing_cbf.nii.gz"
    write_tsv(norm / "cbf_maps.tsv", gone)
    with pytest.raises(InputError, match="column 'cbf' names a missing file sub-01/nothing_cbf.nii.gz"):
        derivatives.read_cbf_maps(norm)
    with pytest.raises(InputError, match="run stage 02"):
        derivatives.read_cbf_maps(tmp_path / "nowhere")


def _old_read_cbf_maps(normalisation_dir):
    """The stage's former reader (roi_clinical.rois.read_cbf_maps, valid-input path)."""
    from ketamine_cbf.io.bids import read_tsv

    t = read_tsv(normalisation_dir / "cbf_maps.tsv", empty_is_na=True)
    t["global_gm_cbf"] = pd.to_numeric(t["global_gm_cbf"])
    t["qc_pass"] = t["qc_pass"].astype(str).str.lower().isin(["true", "1", "yes", "pass"])
    t["period"] = t["period"].fillna("n/a").astype(str)
    return t


def test_merged_reader_gives_the_old_table_and_the_same_roi_values(tmp_path, grid2, ho_masks):
    """Twin merged: io.derivatives.read_cbf_maps returns the old reader's table (plus the
    absolute cbf_path / cbf_smooth_path columns), so the ROI values are the same."""
    brain, _ = grid2
    masks = {k: ho_masks[0][k] for k in ("sgACC", "pgACC")}
    norm, _ = _study(tmp_path, brain, masks, n=2)
    new = derivatives.read_cbf_maps(norm)
    old = _old_read_cbf_maps(norm)
    assert set(new.columns) - set(old.columns) == {"cbf_path", "cbf_smooth_path"}
    pd.testing.assert_frame_equal(new[list(old.columns)], old)
    assert list(new["cbf_path"]) == [str((norm / p).resolve()) for p in old["cbf"]]
    smooth = extraction.extract_roi_values(new, masks, cbf_map="cbf_smooth")
    pd.testing.assert_frame_equal(smooth, extraction.extract_roi_values(new, masks))
    with pytest.raises(InputError, match="missing column 'cbf'"):
        extraction.extract_roi_values(old, masks)


def test_failed_scan_without_a_map_gets_nan(tmp_path, grid2, ho_masks):
    brain, _ = grid2
    masks = {"pgACC": ho_masks[0]["pgACC"]}
    norm, _ = _study(tmp_path, brain, masks, n=1)
    t = pd.read_csv(norm / "cbf_maps.tsv", sep="\t", dtype=str, keep_default_na=False)
    t.loc[1, ["qc_pass", "global_gm_cbf", "cbf", "cbf_smooth"]] = ["false", "n/a", "n/a", "n/a"]
    write_tsv(norm / "cbf_maps.tsv", t)
    rv = extraction.extract_roi_values(derivatives.read_cbf_maps(norm), masks)
    assert np.isnan(rv["cbf"].iloc[1]) and rv["n_voxels"].iloc[1] == 0 and not rv["qc_pass"].iloc[1]
    assert rv["cbf"].drop(index=1).notna().all()
    assert extraction.failed_scans(rv)[["participant_id", "run"]].values.tolist() == [["sub-01", "2"]]


def test_analysis_grid_uses_stage2_masks_or_falls_back(tmp_path, grid2, ho_masks):
    brain, gm = grid2
    norm, _ = _study(tmp_path, brain, {"a": ho_masks[0]["pgACC"]}, n=1)
    cm = derivatives.read_cbf_maps(norm)
    # no stage-2 masks (maps from another pipeline): the template on the maps' grid
    b0, g0 = extraction.analysis_grid(norm, cm)
    assert b0.shape == brain.shape and np.allclose(b0.affine, brain.affine)
    assert np.array_equal(np.asarray(b0.dataobj) > 0, np.asarray(reference_rois.resample_mask(
        template_brain_mask(1), brain).dataobj) > 0)
    with pytest.raises(InputError, match="no CBF maps to take the grid from"):
        extraction.analysis_grid(norm)
    # stage 2's masks (io.derivatives.template_masks)
    save_nifti(brain, norm / "space-MNI152NLin2009aSym_res-2_desc-brain_mask.nii.gz")
    save_nifti(gm, norm / "space-MNI152NLin2009aSym_res-2_label-GM_probseg.nii.gz")
    b1, g1 = extraction.analysis_grid(norm, cm)
    assert np.array_equal(np.asarray(b1.dataobj), np.asarray(brain.dataobj))
    assert np.allclose(g1.get_fdata(), gm.get_fdata())
    assert extraction.analysis_grid(norm)[0].shape == brain.shape


def test_stage_steps_write_masks_and_roi_values(tmp_path, grid2, ho_masks):
    brain, gm = grid2
    norm, truth = _study(tmp_path, brain, ho_masks[0], n=1)
    save_nifti(brain, norm / "space-MNI152NLin2009aSym_res-2_desc-brain_mask.nii.gz")
    save_nifti(gm, norm / "space-MNI152NLin2009aSym_res-2_label-GM_probseg.nii.gz")
    cm = derivatives.read_cbf_maps(norm)
    out = tmp_path / "roi"
    out.mkdir()
    masks, table = extraction.define_stage_rois(norm, cm, out, roi_masks={}, atlas_labels={})
    ref_masks, ref_table = ho_masks
    pd.testing.assert_frame_equal(table, ref_table)
    for name, m in masks.items():
        saved = nib.load(out / f"space-MNI152NLin2009aSym_desc-{name}_mask.nii.gz")
        assert np.array_equal(np.asarray(saved.dataobj), np.asarray(ref_masks[name].dataobj))
    rv = extraction.measure_rois(cm, masks, out)
    written = pd.read_csv(out / "roi_values.tsv", sep="\t", dtype={"run": str})
    assert np.allclose(written["cbf"], rv["cbf"]) and list(written.columns) == list(rv.columns)
    counts = extraction.scans_per_arm(cm)
    assert counts["scans"].tolist() == [1, 1, 1, 1] and counts["qc_pass"].tolist() == [1, 1, 1, 1]
    summary = extraction.roi_summary(rv)
    assert list(summary.columns) == ["roi", "arm", "timepoint", "cbf_mean", "cbf_std", "rcbf_mean", "rcbf_std"]
    assert len(summary) == 3 * 2 * 2
