"""ACC regions of interest and ROI extraction (ketamine_cbf.roi_clinical.rois, ketamine_cbf.reference.atlases)."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.reference import atlases
from ketamine_cbf.reference import rois as reference_rois
from ketamine_cbf.roi_clinical import rois
from ketamine_cbf.errors import InputError
from ketamine_cbf.io.provenance import save_nifti, write_tsv
from ketamine_cbf.reference.templates import template_brain_mask, template_gm


@pytest.fixture(scope="module")
def grid2():
    return template_brain_mask(2), template_gm(2)


@pytest.fixture(scope="module")
def ho_masks(grid2):
    brain, gm = grid2
    return reference_rois.define_rois(brain, gm_img=gm)


def _coords(img):
    return reference_rois._world_coords(img)[np.asarray(img.dataobj) > 0]


# ------------------------------------------------------------------ atlas definition
def test_acc_centres_lie_in_their_atlas_subregion(ho_masks):
    """The simulation's blob centres (ACC_CENTRES_MNI) are verified against the
    independent atlas definition: inside their own subregion (within one voxel of the
    midline point) and nearest to their own subregion's centroid, within 8 mm."""
    masks, table = ho_masks
    cent = table.set_index("roi")[["centroid_x", "centroid_y", "centroid_z"]]
    for name, c in reference_rois.ACC_CENTRES_MNI.items():
        assert reference_rois.contains_point(masks[name], c, tolerance_mm=4.0), name
        d = np.linalg.norm(cent.to_numpy() - np.asarray(c), axis=1)
        assert cent.index[np.argmin(d)] == name
        assert d[list(cent.index).index(name)] < 8.0


def test_ho_subregions_follow_the_genu_split(ho_masks):
    masks, table = ho_masks
    y = {n: _coords(m)[:, 1] for n, m in masks.items()}
    assert y["pgACC"].min() > 30.0
    assert y["dACC"].min() >= 0.0 and y["dACC"].max() <= 30.0
    z = _coords(masks["sgACC"])[:, 2]
    assert z.max() <= 2.0  # subcallosal: below the genu
    data = {n: np.asarray(m.dataobj) > 0 for n, m in masks.items()}
    assert not (data["sgACC"] & data["pgACC"]).any()
    assert not (data["pgACC"] & data["dACC"]).any()
    # plausible grey-matter volumes (ml) for bilateral ACC subregions
    assert table["volume_ml"].between(2.0, 20.0).all()


def test_maxprob_rule_against_raw_probabilities():
    """Every voxel of a max-probability mask has that label as its most probable one,
    with probability >= the threshold; voxels just outside do not."""
    img = nib.load(str(atlases.atlas_path("harvard_oxford")))
    labels = atlases.atlas_labels("harvard_oxford")
    idx = atlases.resolve_labels(labels, ["Left_Subcallosal_Cortex"])
    box = ((-20.0, 5.0), (5.0, 35.0), (-30.0, 5.0))
    m = np.asarray(atlases.probabilistic_maxprob(img, idx, 25, bbox_mm=box).dataobj) > 0
    ijk = np.argwhere(m)
    assert len(ijk) > 500
    lo, hi = ijk.min(0), ijk.max(0) + 1
    raw = np.asarray(img.dataobj[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2], :]).astype(int)
    sub = m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    p = raw[..., idx[0]]
    assert (p[sub] >= 25).all()
    assert (p[sub] >= raw[sub].max(axis=-1)).all()
    other = ~sub & (p >= 25) & (p > np.delete(raw, idx[0], axis=-1).max(axis=-1))
    assert not other.any()


def test_spheres_have_the_volume_of_a_ball(grid2):
    brain, _ = grid2
    masks = reference_rois.sphere_rois(brain, {"a": (0.0, 0.0, 0.0)}, radius_mm=10.0)
    pts = _coords(masks["a"])
    assert np.linalg.norm(pts, axis=1).max() <= 10.0
    expected = 4 / 3 * np.pi * 10.0 ** 3 / 8.0  # voxels of 8 mm3
    assert abs(len(pts) - expected) / expected < 0.1
    with pytest.raises(InputError, match="radius"):
        reference_rois.sphere_rois(brain, radius_mm=0)


def test_resample_mask_keeps_volume_and_is_identity_on_same_grid(grid2):
    brain, _ = grid2
    a = np.zeros((60, 60, 60), np.uint8)
    a[20:40, 20:40, 20:40] = 1  # 20 mm cube at 1 mm
    src = nib.Nifti1Image(a, np.diag([1.0, 1.0, 1.0, 1.0]) + np.c_[np.zeros((4, 3)), [-30, -30, -30, 0]])
    out = reference_rois.resample_mask(src, brain)
    vol = np.asarray(out.dataobj).sum() * 8.0
    assert abs(vol - 8000.0) / 8000.0 < 0.15
    same = reference_rois.resample_mask(out, brain)
    assert np.array_equal(np.asarray(same.dataobj), np.asarray(out.dataobj))


def test_atlas_labels_and_errors(grid2, tmp_path):
    brain, gm = grid2
    spec = {"aal_acc": {"atlas": "aal", "labels": ["Cingulate_Ant_L", "Cingulate_Ant_R"]}}
    masks, table = reference_rois.define_rois(brain, gm_img=gm, atlas_labels=spec)
    assert set(masks) == {"sgACC", "pgACC", "dACC", "aal_acc"}
    # AAL's anterior cingulate overlaps the Harvard-Oxford pregenual/dorsal ACC
    aal = np.asarray(masks["aal_acc"].dataobj) > 0
    ho = (np.asarray(masks["pgACC"].dataobj) > 0) | (np.asarray(masks["dACC"].dataobj) > 0)
    assert (aal & ho).sum() > 0.2 * aal.sum()
    with pytest.raises(InputError, match="aal.*no label named 'Cingulate_Anterior'"):
        reference_rois.atlas_label_rois(brain, {"x": {"atlas": "aal", "labels": ["Cingulate_Anterior"]}})
    with pytest.raises(InputError, match="unknown atlas 'nosuch'"):
        reference_rois.atlas_label_rois(brain, {"x": {"atlas": "nosuch", "labels": [1]}})
    # a user atlas by path, addressed by name through a label file
    lab = np.zeros(brain.shape, np.int16)
    lab[45:55, 80:90, 40:50] = 7
    save_nifti(nib.Nifti1Image(lab, brain.affine), tmp_path / "my_atlas.nii.gz")
    write_tsv(tmp_path / "my_atlas.tsv", pd.DataFrame({"index": [7], "name": ["blob"]}))
    m = reference_rois.atlas_label_rois(brain, {"b": {"atlas": str(tmp_path / "my_atlas.nii.gz"), "labels": ["blob"],
                                            "labels_file": str(tmp_path / "my_atlas.tsv")}})
    assert np.asarray(m["b"].dataobj).sum() == 1000


def test_user_masks_replace_and_errors_name_the_file(grid2, tmp_path):
    brain, gm = grid2
    sph = reference_rois.sphere_rois(brain, {"pgACC": reference_rois.ACC_CENTRES_MNI["pgACC"]}, 6.0)["pgACC"]
    save_nifti(sph, tmp_path / "mine.nii.gz")
    masks, table = reference_rois.define_rois(brain, gm_img=None, roi_masks={"pgACC": tmp_path / "mine.nii.gz"})
    assert np.array_equal(np.asarray(masks["pgACC"].dataobj) > 0,
                          (np.asarray(sph.dataobj) > 0) & (np.asarray(brain.dataobj) > 0))
    assert table.set_index("roi").loc["pgACC", "source"] == "user mask"
    with pytest.raises(InputError, match="missing.nii.gz"):
        reference_rois.define_rois(brain, roi_masks={"x": tmp_path / "missing.nii.gz"})
    empty = nib.Nifti1Image(np.zeros(brain.shape, np.uint8), brain.affine)
    save_nifti(empty, tmp_path / "empty.nii.gz")
    with pytest.raises(InputError, match="ROI 'bad'.*0 voxel"):
        reference_rois.define_rois(brain, roi_masks={"bad": tmp_path / "empty.nii.gz"})
    with pytest.raises(InputError, match="roi_definition"):
        reference_rois.define_rois(brain, method="cubes")


def test_gm_threshold_restricts(grid2, ho_masks):
    brain, gm = grid2
    masks_all, t_all = reference_rois.define_rois(brain, gm_img=gm, gm_threshold=None)
    _, t_gm = ho_masks
    assert (t_gm["n_voxels"].to_numpy() < t_all["n_voxels"].to_numpy()).all()
    g = gm.get_fdata()
    for name, m in ho_masks[0].items():
        assert (g[np.asarray(m.dataobj) > 0] >= 0.3).all()


# ------------------------------------------------------------------ extraction
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
    cm = rois.read_cbf_maps(norm)
    rv = rois.extract_roi_values(cm, norm, masks)
    assert len(rv) == len(cm) * len(masks)
    for r in rv.itertuples():
        vals, glob = truth[(r.participant_id, r.session_id, str(r.run))]
        assert r.cbf == pytest.approx(vals[r.roi], rel=1e-6)
        assert r.rcbf == pytest.approx(vals[r.roi] / glob, rel=1e-6)
    # independent reference: nilearn's masker on a map with real spatial variation
    rng = np.random.default_rng(1)
    img = nib.Nifti1Image(rng.normal(50, 10, brain.shape).astype(np.float32), brain.affine)
    ours = rois.roi_means([img], masks, names=["x"])
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
    out = rois.roi_means([nib.Nifti1Image(data, brain.affine)], m, names=["s"])
    assert out.loc["s", "a_n_voxels"] == n - 1
    assert out.loc["s", "a"] == pytest.approx((10.0 * (n - 2) + 1000.0) / (n - 1))
    other = nib.Nifti1Image(np.zeros((10, 10, 10), np.float32), np.eye(4))
    save_nifti(other, tmp_path / "wrong_grid_cbf.nii.gz")
    with pytest.raises(InputError, match="wrong_grid_cbf.nii.gz: grid"):
        rois.roi_means([tmp_path / "wrong_grid_cbf.nii.gz"], m)


def test_read_cbf_maps_errors_name_file_and_field(tmp_path, grid2, ho_masks):
    brain, _ = grid2
    norm, _ = _study(tmp_path, brain, {"a": ho_masks[0]["pgACC"]}, n=1)
    t = pd.read_csv(norm / "cbf_maps.tsv", sep="\t")
    write_tsv(norm / "cbf_maps.tsv", t.drop(columns="global_gm_cbf"))
    with pytest.raises(InputError, match=r"cbf_maps.tsv: missing column 'global_gm_cbf'"):
        rois.read_cbf_maps(norm)
    bad = t.copy()
    bad.loc[0, "arm"] = "drug"
    write_tsv(norm / "cbf_maps.tsv", bad)
    with pytest.raises(InputError, match=r"column 'arm' has unexpected value\(s\) \['drug'\]"):
        rois.read_cbf_maps(norm)
    bad.loc[0, "arm"] = "n/a"
    write_tsv(norm / "cbf_maps.tsv", bad)
    with pytest.raises(InputError, match=r"column 'arm' is n/a for sub-01"):
        rois.read_cbf_maps(norm)
    write_tsv(norm / "cbf_maps.tsv", pd.concat([t, t.iloc[:1]]))
    with pytest.raises(InputError, match="duplicate rows.*sub-01"):
        rois.read_cbf_maps(norm)
    gone = t.copy()
    gone.loc[0, "cbf"] = "sub-01/nothing_cbf.nii.gz"
    write_tsv(norm / "cbf_maps.tsv", gone)
    with pytest.raises(InputError, match="column 'cbf' names a missing file sub-01/nothing_cbf.nii.gz"):
        rois.read_cbf_maps(norm)
    with pytest.raises(InputError, match="run stage 02"):
        rois.read_cbf_maps(tmp_path / "nowhere")


def test_notebook_parameters_are_all_declared():
    """Every stage-4 parameter is visible to papermill (a '=' in a comment hides it)."""
    import papermill as pm

    from ketamine_cbf.reference.paths import project_root

    params = pm.inspect_notebook(str(project_root() / "notebooks" / "04_roi_clinical.ipynb"))
    for name in ("seed", "bids_dir", "derivatives_dir", "output_dir", "roi_definition",
                 "sphere_radius_mm", "gm_threshold", "roi_masks", "atlas_labels", "cbf_map",
                 "exclude_qc_fail", "global_adjustment", "brain_behaviour_pairs", "n_boot",
                 "n_perm", "ci_level", "fdr_alpha"):
        assert name in params, name
        if name not in ("seed", "bids_dir", "derivatives_dir", "output_dir"):
            assert params[name]["help"], f"{name} has no comment"
