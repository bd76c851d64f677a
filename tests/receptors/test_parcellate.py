"""Tests of ketamine_cbf.receptors.parcellate: atlas on the analysis grid, parcel means, distances."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from ketamine_cbf.receptors import parcellate
from ketamine_cbf.reference import templates
from ketamine_cbf.errors import InputError, UsageError


@pytest.fixture(scope="module")
def mask4():
    return templates.template_brain_mask(4)


@pytest.fixture(scope="module")
def atlas4(mask4):
    return parcellate.build_atlas(mask4, mask_img=mask4, min_voxels=3)


def test_default_atlas_content(atlas4):
    t = atlas4.table
    assert atlas4.name == "schaefer200+harvard_oxford"
    assert len(t) + len(atlas4.dropped) == 214
    assert list(t.columns) == ["label", "name", "hemisphere", "structure", "network", "n_voxels", "x", "y", "z"]
    assert t["name"].is_unique and t["label"].is_monotonic_increasing
    # hemisphere labels agree with the side of the centroid (x < 0 is left in RAS)
    assert np.all((t["x"] < 0) == (t["hemisphere"] == "L"))
    sub = t[t.structure == "subcortex"].set_index("name")
    assert len(sub) == 14
    # known anatomy of the MNI152 deep grey matter (mm)
    for side, sign in (("Left", -1), ("Right", 1)):
        th = sub.loc[f"{side}_Thalamus"]
        assert 5 < sign * th.x < 16 and -25 < th.y < -10 and 0 < th.z < 14
        hc = sub.loc[f"{side}_Hippocampus"]
        assert 18 < sign * hc.x < 34 and hc.z < -5
    vis = t[t.network == "visual"]
    assert vis["y"].mean() < -60  # occipital
    # every kept parcel has at least min_voxels voxels in the label image
    counts = np.bincount(np.asarray(atlas4.img.dataobj).ravel(), minlength=t.label.max() + 1)
    np.testing.assert_array_equal(counts[t.label], t.n_voxels)
    assert np.all(t.n_voxels >= 3)


def test_atlas_respects_mask(mask4):
    half = np.asarray(mask4.dataobj).copy()
    aff = mask4.affine
    i0 = int(round(np.linalg.inv(aff)[0] @ np.array([0, 0, 0, 1])))
    half[i0:] = 0 if aff[0, 0] > 0 else half[i0:]
    half[:i0] = half[:i0] if aff[0, 0] > 0 else 0
    a = parcellate.build_atlas(mask4, mask_img=nib.Nifti1Image(half, aff), min_voxels=3)
    assert set(a.table.hemisphere) == {"L"}
    assert len(a.dropped) >= 100


def test_cortex_only_and_custom_atlas(mask4, tmp_path):
    a = parcellate.build_atlas(mask4, subcortical=None, cortical="schaefer400", mask_img=mask4, min_voxels=1)
    assert set(a.table.structure) == {"cortex"} and len(a) + len(a.dropped) == 400
    lab = np.zeros(mask4.shape, np.int16)
    lab[10:15, 10:15, 10:15] = 5
    lab[20:25, 20:25, 10:15] = 9
    p = tmp_path / "lab.nii.gz"
    nib.save(nib.Nifti1Image(lab, mask4.affine), p)
    tab = tmp_path / "lab.tsv"
    pd.DataFrame({"label": [5, 9], "name": ["a", "b"], "hemisphere": ["L", "R"]}).to_csv(tab, sep="\t", index=False)
    c = parcellate.build_atlas(mask4, atlas_img=p, atlas_table=tab, min_voxels=1)
    assert c.names == ["a", "b"] and list(c.table.n_voxels) == [125, 125]
    ijk = np.array([12, 12, 12, 1.0])
    np.testing.assert_allclose(c.table.loc[0, ["x", "y", "z"]].to_numpy(float), (mask4.affine @ ijk)[:3])


def test_parcel_means_match_nilearn_and_neuromaps(atlas4, mask4):
    """Independent references: nilearn's NiftiLabelsMasker and neuromaps' Parcellater."""
    from neuromaps.parcellate import Parcellater
    from nilearn.maskers import NiftiLabelsMasker

    rng = np.random.default_rng(0)
    data = ndimage.gaussian_filter(rng.standard_normal(mask4.shape), 2) + 10
    img = nib.Nifti1Image(data.astype(np.float32), mask4.affine)
    ours = parcellate.parcel_means(img, atlas4, names=["m"])["m"].to_numpy()
    ref = np.ravel(NiftiLabelsMasker(atlas4.img, standardize=None).fit_transform(img))
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    nm = Parcellater(atlas4.img, "MNI152", resampling_target="data").fit().transform(img, "MNI152")
    np.testing.assert_allclose(ours, np.ravel(nm), rtol=1e-5)


def test_parcel_means_nan_and_zero(atlas4):
    lab = np.asarray(atlas4.img.dataobj)
    first = atlas4.table.label.iloc[0]
    vox = np.argwhere(lab == first)
    data = np.zeros(lab.shape)
    data[lab > 0] = 2.0
    data[tuple(vox[0])] = 8.0
    data[tuple(vox[1])] = np.nan
    data[tuple(vox[2])] = 0.0
    img = nib.Nifti1Image(data, atlas4.img.affine)
    n = len(vox)
    with_zero = parcellate.parcel_means(img, atlas4, names=["v"])["v"].iloc[0]
    no_zero = parcellate.parcel_means(img, atlas4, names=["v"], ignore_zero=True)["v"].iloc[0]
    assert with_zero == pytest.approx((8 + 2 * (n - 3) + 0) / (n - 1))
    assert no_zero == pytest.approx((8 + 2 * (n - 3)) / (n - 2))
    empty = parcellate.parcel_means(nib.Nifti1Image(np.zeros(lab.shape), atlas4.img.affine), atlas4,
                                    ignore_zero=True)
    assert empty.isna().all().all()


def test_parcel_means_resamples_other_grid(atlas4):
    t2 = templates.template_brain_mask(2)
    data = np.asarray(t2.dataobj).astype(np.float32) * 3.0
    out = parcellate.parcel_means({"three": nib.Nifti1Image(data, t2.affine)}, atlas4)
    inner = atlas4.table.n_voxels > 20
    np.testing.assert_allclose(out["three"][inner.to_numpy()], 3.0, atol=0.6)


def test_distance_matrix(atlas4):
    D = parcellate.distance_matrix(atlas4)
    assert list(D.index) == atlas4.names
    v = D.to_numpy()
    np.testing.assert_allclose(v, v.T)
    np.testing.assert_allclose(np.diag(v), 0)
    lab = np.asarray(atlas4.img.dataobj)
    ids = atlas4.table.label.to_numpy()
    com = np.array(ndimage.center_of_mass(lab > 0, lab, ids))
    xyz = nib.affines.apply_affine(atlas4.img.affine, com)
    np.testing.assert_allclose(v, cdist(xyz, xyz), atol=1e-6)


def test_errors(mask4, tmp_path):
    with pytest.raises(InputError, match="not found"):
        parcellate.build_atlas(tmp_path / "missing.nii.gz")
    with pytest.raises(UsageError, match="cortical atlas"):
        parcellate.build_atlas(mask4, cortical="schaefer100")
    with pytest.raises(UsageError, match="subcortical"):
        parcellate.build_atlas(mask4, subcortical="aseg")
    with pytest.raises(InputError, match="not on the grid"):
        parcellate.build_atlas(mask4, mask_img=templates.template_brain_mask(2))
    with pytest.raises(UsageError, match="empty"):
        parcellate.build_atlas(mask4, cortical="none", subcortical=None)
    four = tmp_path / "four.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)), four)
    with pytest.raises(InputError, match="3D"):
        parcellate.build_atlas(four)


def test_subcortical_labels_are_the_harvard_oxford_maxprob_rule():
    """Merged twin: the labels come from reference.atlases.maxprob_labels; check the rule by hand."""
    import nibabel as nib

    from ketamine_cbf.reference.atlases import atlas_labels, atlas_path

    img, names = parcellate._ho_maxprob(25.0, parcellate.SUBCORTICAL_STRUCTURES)
    lab = np.asarray(img.dataobj)
    ho = nib.load(str(atlas_path("harvard_oxford")))
    index = dict(zip(atlas_labels("harvard_oxford")["name"].str.lower(), atlas_labels("harvard_oxford")["index"]))
    ijk = np.argwhere(lab > 0)
    lo, hi = ijk.min(0), ijk.max(0) + 1
    block = np.asarray(ho.dataobj[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2], :])
    best, pmax = block.argmax(axis=3), block.max(axis=3)
    inner = lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    for k, s in enumerate(names, start=1):
        expected = (best == index[s.lower()]) & (pmax >= 25.0)
        np.testing.assert_array_equal(inner == k, expected)
    assert (lab[:lo[0]] == 0).all() and set(np.unique(lab)) == set(range(len(names) + 1))
