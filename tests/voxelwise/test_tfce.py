"""TFCE: equality with nilearn and closed-form cases."""

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.mass_univariate._utils import calculate_tfce
from scipy import ndimage

from ketamine_cbf.voxelwise.connectivity import grid_neighbours
from ketamine_cbf.voxelwise.tfce import tfce, tfce_img, tfce_thresholds


def _nilearn_tfce(vol, two_sided, **kw):
    return calculate_tfce(vol[..., None], ndimage.generate_binary_structure(3, 1),
                          two_sided_test=two_sided, **kw)[..., 0]


@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_tfce_equals_nilearn(two_sided, seed, random_mask, random_field):
    rng = np.random.default_rng(seed)
    mask = random_mask(rng)
    vol = np.where(mask, random_field(rng), 0.0)
    ours = tfce(vol[mask], grid_neighbours(mask), two_sided=two_sided)
    ref = _nilearn_tfce(vol, two_sided)
    assert np.abs(ref).max() > 100  # a non-trivial map
    np.testing.assert_allclose(ours, ref[mask], rtol=1e-9, atol=1e-6)
    assert np.all(ref[~mask] == 0)
    if two_sided:
        assert (ours < 0).any() and (ours > 0).any()
    else:
        assert (ours >= 0).all()


@pytest.mark.parametrize("E,H,dh", [(1.0, 1.0, "auto"), (0.5, 2.0, 0.1), (2 / 3, 2.0, 0.05)])
def test_tfce_parameters_equal_nilearn(E, H, dh, random_mask, random_field):
    rng = np.random.default_rng(7)
    mask = random_mask(rng)
    vol = np.where(mask, random_field(rng), 0.0)
    ours = tfce(vol[mask], grid_neighbours(mask), E=E, H=H, dh=dh)
    ref = _nilearn_tfce(vol, True, E=E, H=H, dh=dh)
    np.testing.assert_allclose(ours, ref[mask], rtol=1e-9, atol=1e-6)


def test_tfce_step_clipping_warns_like_nilearn(random_mask, random_field):
    rng = np.random.default_rng(3)
    mask = random_mask(rng)
    vol = np.where(mask, random_field(rng), 0.0)
    with pytest.warns(UserWarning, match="Not enough steps"):
        ours = tfce(vol[mask], grid_neighbours(mask), dh=100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _nilearn_tfce(vol, True, dh=100.0)
    np.testing.assert_allclose(ours, ref[mask], rtol=1e-9, atol=1e-6)


def test_tfce_thresholds_are_nilearns(random_field):
    from nilearn.mass_univariate._utils import _return_score_threshs

    rng = np.random.default_rng(4)
    vol = random_field(rng)
    for two in (True, False):
        np.testing.assert_array_equal(tfce_thresholds(vol, two_sided=two),
                                      _return_score_threshs(vol, "auto", two))
        np.testing.assert_array_equal(tfce_thresholds(vol, dh=0.1, two_sided=two),
                                      _return_score_threshs(vol, 0.1, two))


def test_tfce_single_voxel_closed_form():
    """One supra-threshold voxel of height m: TFCE = sum_k (k m / 100)^2 (extent 1)."""
    mask = np.ones((5, 5, 5), bool)
    vol = np.zeros(mask.shape)
    vol[2, 2, 2] = 3.0
    out = tfce(vol[mask], grid_neighbours(mask))
    k = np.arange(1, 101)
    expected = np.sum((k * 3.0 / 100) ** 2)
    assert out.max() == pytest.approx(expected, rel=1e-12)
    assert np.count_nonzero(out) == 1


def test_tfce_plateau_closed_form():
    """A flat cluster of n voxels at height m: every voxel gets n^E * sum_k h_k^H."""
    mask = np.ones((6, 6, 6), bool)
    vol = np.zeros(mask.shape)
    vol[1:4, 1:3, 2] = 2.0  # 6 face-connected voxels
    vol[5, 5, 5] = 2.0      # an isolated voxel
    out = tfce(vol[mask], grid_neighbours(mask), two_sided=False).reshape(mask.shape)
    s = np.sum((np.arange(1, 101) * 2.0 / 100) ** 2)
    np.testing.assert_allclose(out[1:4, 1:3, 2], np.sqrt(6) * s, rtol=1e-12)
    assert out[5, 5, 5] == pytest.approx(s, rel=1e-12)


def test_tfce_one_sided_ignores_negative_and_empty_maps():
    mask = np.ones((5, 5, 5), bool)
    vol = -np.abs(np.random.default_rng(0).standard_normal(mask.shape))
    assert not tfce(vol[mask], grid_neighbours(mask), two_sided=False).any()
    assert not tfce(np.zeros(mask.sum()), grid_neighbours(mask)).any()
    two = tfce(vol[mask], grid_neighbours(mask), two_sided=True)
    assert (two <= 0).all() and two.min() < 0


def test_tfce_img_accepts_paths(tmp_path, random_mask, random_field):
    rng = np.random.default_rng(5)
    mask = random_mask(rng)
    vol = np.where(mask, random_field(rng), 0.0)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(vol, aff), tmp_path / "t.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), aff), tmp_path / "m.nii.gz")
    out = tfce_img(tmp_path / "t.nii.gz", tmp_path / "m.nii.gz")
    np.testing.assert_allclose(out.get_fdata()[mask], tfce(vol[mask], grid_neighbours(mask)))
    np.testing.assert_array_equal(out.affine, aff)
