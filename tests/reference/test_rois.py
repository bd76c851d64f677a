"""ROI definitions shared by stages 3 and 4 (ketamine_cbf.reference.rois, ketamine_cbf.reference.atlases)."""

import inspect

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.provenance import save_nifti, write_tsv
from ketamine_cbf.reference import atlases, rois
from ketamine_cbf.reference.templates import template_brain_mask, template_gm


@pytest.fixture(scope="module")
def grid2():
    return template_brain_mask(2), template_gm(2)


@pytest.fixture(scope="module")
def ho_masks(grid2):
    brain, gm = grid2
    return rois.define_rois(brain, gm_img=gm)


def _coords(img):
    return rois._world_coords(img)[np.asarray(img.dataobj) > 0]


# ------------------------------------------------------------------ atlas definition
def test_acc_centres_lie_in_their_atlas_subregion(ho_masks):
    """The simulation's blob centres (ACC_CENTRES_MNI) are verified against the
    independent atlas definition: inside their own subregion (within one voxel of the
    midline point) and nearest to their own subregion's centroid, within 8 mm."""
    masks, table = ho_masks
    cent = table.set_index("roi")[["centroid_x", "centroid_y", "centroid_z"]]
    for name, c in rois.ACC_CENTRES_MNI.items():
        assert rois.contains_point(masks[name], c, tolerance_mm=4.0), name
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
    masks = rois.sphere_rois(brain, {"a": (0.0, 0.0, 0.0)}, radius_mm=10.0)
    pts = _coords(masks["a"])
    assert np.linalg.norm(pts, axis=1).max() <= 10.0
    expected = 4 / 3 * np.pi * 10.0 ** 3 / 8.0  # voxels of 8 mm3
    assert abs(len(pts) - expected) / expected < 0.1
    with pytest.raises(InputError, match="radius"):
        rois.sphere_rois(brain, radius_mm=0)


def test_resample_mask_keeps_volume_and_is_identity_on_same_grid(grid2):
    brain, _ = grid2
    a = np.zeros((60, 60, 60), np.uint8)
    a[20:40, 20:40, 20:40] = 1  # 20 mm cube at 1 mm
    src = nib.Nifti1Image(a, np.diag([1.0, 1.0, 1.0, 1.0]) + np.c_[np.zeros((4, 3)), [-30, -30, -30, 0]])
    out = rois.resample_mask(src, brain)
    vol = np.asarray(out.dataobj).sum() * 8.0
    assert abs(vol - 8000.0) / 8000.0 < 0.15
    same = rois.resample_mask(out, brain)
    assert np.array_equal(np.asarray(same.dataobj), np.asarray(out.dataobj))


def test_atlas_labels_and_errors(grid2, tmp_path):
    brain, gm = grid2
    spec = {"aal_acc": {"atlas": "aal", "labels": ["Cingulate_Ant_L", "Cingulate_Ant_R"]}}
    masks, table = rois.define_rois(brain, gm_img=gm, atlas_labels=spec)
    assert set(masks) == {"sgACC", "pgACC", "dACC", "aal_acc"}
    # AAL's anterior cingulate overlaps the Harvard-Oxford pregenual/dorsal ACC
    aal = np.asarray(masks["aal_acc"].dataobj) > 0
    ho = (np.asarray(masks["pgACC"].dataobj) > 0) | (np.asarray(masks["dACC"].dataobj) > 0)
    assert (aal & ho).sum() > 0.2 * aal.sum()
    with pytest.raises(InputError, match="aal.*no label named 'Cingulate_Anterior'"):
        rois.atlas_label_rois(brain, {"x": {"atlas": "aal", "labels": ["Cingulate_Anterior"]}})
    with pytest.raises(InputError, match="unknown atlas 'nosuch'"):
        rois.atlas_label_rois(brain, {"x": {"atlas": "nosuch", "labels": [1]}})
    # a user atlas by path, addressed by name through a label file
    lab = np.zeros(brain.shape, np.int16)
    lab[45:55, 80:90, 40:50] = 7
    save_nifti(nib.Nifti1Image(lab, brain.affine), tmp_path / "my_atlas.nii.gz")
    write_tsv(tmp_path / "my_atlas.tsv", pd.DataFrame({"index": [7], "name": ["blob"]}))
    m = rois.atlas_label_rois(brain, {"b": {"atlas": str(tmp_path / "my_atlas.nii.gz"), "labels": ["blob"],
                                            "labels_file": str(tmp_path / "my_atlas.tsv")}})
    assert np.asarray(m["b"].dataobj).sum() == 1000


def test_user_masks_replace_and_errors_name_the_file(grid2, tmp_path):
    brain, gm = grid2
    sph = rois.sphere_rois(brain, {"pgACC": rois.ACC_CENTRES_MNI["pgACC"]}, 6.0)["pgACC"]
    save_nifti(sph, tmp_path / "mine.nii.gz")
    masks, table = rois.define_rois(brain, gm_img=None, roi_masks={"pgACC": tmp_path / "mine.nii.gz"})
    assert np.array_equal(np.asarray(masks["pgACC"].dataobj) > 0,
                          (np.asarray(sph.dataobj) > 0) & (np.asarray(brain.dataobj) > 0))
    assert table.set_index("roi").loc["pgACC", "source"] == "user mask"
    with pytest.raises(InputError, match="missing.nii.gz"):
        rois.define_rois(brain, roi_masks={"x": tmp_path / "missing.nii.gz"})
    empty = nib.Nifti1Image(np.zeros(brain.shape, np.uint8), brain.affine)
    save_nifti(empty, tmp_path / "empty.nii.gz")
    with pytest.raises(InputError, match="ROI 'bad'.*0 voxel"):
        rois.define_rois(brain, roi_masks={"bad": tmp_path / "empty.nii.gz"})
    with pytest.raises(InputError, match="roi_definition"):
        rois.define_rois(brain, method="cubes")


def test_roi_gm_threshold_restricts(grid2, ho_masks):
    brain, gm = grid2
    masks_all, t_all = rois.define_rois(brain, gm_img=gm, roi_gm_threshold=None)
    _, t_gm = ho_masks
    assert (t_gm["n_voxels"].to_numpy() < t_all["n_voxels"].to_numpy()).all()
    g = gm.get_fdata()
    for name, m in ho_masks[0].items():
        assert (g[np.asarray(m.dataobj) > 0] >= 0.3).all()


def test_define_rois_threshold_parameter_is_roi_gm_threshold():
    """One meaning per name: the ROI voxels' GM threshold is ``roi_gm_threshold`` (stage 4's
    notebook parameter), with the notebook's default."""
    params = inspect.signature(rois.define_rois).parameters
    assert "gm_threshold" not in params
    assert params["roi_gm_threshold"].default == 0.3


def test_resample_continuous_gives_the_covered_fraction(grid2):
    brain, _ = grid2
    a = np.zeros((60, 60, 60), np.uint8)
    a[20:40, 20:40, 20:40] = 1
    src = nib.Nifti1Image(a, np.diag([1.0, 1.0, 1.0, 1.0]) + np.c_[np.zeros((4, 3)), [-30, -30, -30, 0]])
    frac = rois.resample_continuous(src, brain).get_fdata()
    assert frac.shape == brain.shape and frac.min() >= 0 and frac.max() <= 1 + 1e-6
    assert abs(frac.sum() * 8.0 - 8000.0) / 8000.0 < 0.05  # volume kept (2 mm voxels)
